/**
 * Upstream's DHT discovery: go-libp2p-kad-dht's dual DHT, a WAN one on
 * `/ipfs/kad/1.0.0` (public addresses) and a LAN one on
 * `/ipfs/lan/kad/1.0.0` (private addresses), both as servers. Every node
 * puts a provider record for the rendezvous there (CIDv1, raw, SHA-256 of the
 * rendezvous string) and looks the rendezvous up, so nodes that only share
 * relays find each other. Our agents do not need it to reach each other
 * (PeerIDs derive from node names, relays are configured). Go EdgeMesh agents
 * do: it is how they learn that a non-relay node of ours exists.
 */
import type { Libp2p, PeerInfo } from '@libp2p/interface'
import type { Logger } from '../observability/logger.ts'

export const WAN_DHT_PROTOCOL = '/ipfs/kad/1.0.0'
export const LAN_DHT_PROTOCOL = '/ipfs/lan/kad/1.0.0'
/** Upstream re-provides every 7/8 of 3 hours. */
const REPROVIDE_MS = 21 * 60 * 60 * 1000 / 8

interface Dht {
  provide: (key: unknown, options: { signal: AbortSignal }) => AsyncIterable<unknown>
  findProviders: (key: unknown, options: { signal: AbortSignal }) => AsyncIterable<{ name: string, providers?: PeerInfo[] }>
}

/** The libp2p services the DHTs need: both DHTs, and ping (kad-dht checks contacts with it). */
export async function dhtServices (): Promise<Record<string, unknown>> {
  const [{ kadDHT, removePrivateAddressesMapper, removePublicAddressesMapper }, { ping }] = await Promise.all([import('@libp2p/kad-dht'), import('@libp2p/ping')])
  return {
    ping: ping(),
    lanDHT: kadDHT({ protocol: LAN_DHT_PROTOCOL, peerInfoMapper: removePublicAddressesMapper, clientMode: false, logPrefix: 'libp2p:dht-lan', datastorePrefix: '/dht-lan', metricsPrefix: 'libp2p_dht_lan' }),
    wanDHT: kadDHT({ protocol: WAN_DHT_PROTOCOL, peerInfoMapper: removePrivateAddressesMapper, clientMode: false, logPrefix: 'libp2p:dht-wan', datastorePrefix: '/dht-wan', metricsPrefix: 'libp2p_dht_wan' })
  }
}

/** Advertises the rendezvous on both DHTs and looks it up every `findIntervalMs`; `onPeer` gets each provider that is not us. */
export class DhtDiscovery {
  readonly #log: Logger
  readonly #node: Libp2p
  readonly #onPeer: (peer: PeerInfo) => void
  readonly #init: { rendezvous: string, findIntervalMs: number }
  readonly #advertisedAt = new Map<string, number>()
  #abort: AbortController | undefined
  #timer: NodeJS.Timeout | undefined
  #running = false

  constructor (deps: { logger: Logger, node: Libp2p, onPeer: (peer: PeerInfo) => void }, init: { rendezvous: string, findIntervalMs: number }) {
    this.#log = deps.logger
    this.#node = deps.node
    this.#onPeer = deps.onPeer
    this.#init = init
  }

  async start (): Promise<void> {
    if (this.#abort !== undefined) return
    this.#abort = new AbortController()
    const [{ CID }, { sha256 }, raw] = await Promise.all([import('multiformats/cid'), import('multiformats/hashes/sha2'), import('multiformats/codecs/raw')])
    const key = CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(this.#init.rendezvous)))
    const round = (): void => { this.#round(key).catch(err => this.#log.debug('DHT round failed', { err: (err as Error).message })) }
    round()
    this.#timer = setInterval(round, this.#init.findIntervalMs)
    this.#timer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#abort?.abort()
    this.#abort = undefined
  }

  async #round (key: unknown): Promise<void> {
    const signal = this.#abort?.signal
    if (this.#running || signal === undefined) return
    this.#running = true
    try {
      const services = this.#node.services as Record<string, Dht>
      for (const name of ['lanDHT', 'wanDHT']) {
        const dht = services[name]
        if (dht === undefined) continue
        const last = this.#advertisedAt.get(name)
        if (last === undefined || Date.now() - last > REPROVIDE_MS) {
          // Fails while the routing table is empty (no peer yet): tried again next round.
          try {
            await drain(dht.provide(key, { signal }))
            this.#advertisedAt.set(name, Date.now())
            if (last === undefined) this.#log.info('rendezvous advertised on the DHT', { dht: name, rendezvous: this.#init.rendezvous })
          } catch (err) {
            if (signal.aborted) return
            this.#log.debug('DHT provide failed; retrying next round', { dht: name, err: (err as Error).message })
          }
        }
        try {
          for await (const event of dht.findProviders(key, { signal })) {
            if (event.name !== 'PROVIDER') continue
            for (const peer of event.providers ?? []) if (!peer.id.equals(this.#node.peerId)) this.#onPeer(peer)
          }
        } catch (err) {
          if (signal.aborted) return
          this.#log.debug('DHT lookup failed', { dht: name, err: (err as Error).message })
        }
      }
    } finally {
      this.#running = false
    }
  }
}

/** Runs a DHT query to its end: its work happens as its progress events are consumed. */
async function drain (events: AsyncIterable<unknown>): Promise<void> {
  const it = events[Symbol.asyncIterator]()
  while (!(await it.next()).done) { /* next event */ }
}
