/**
 * LAN discovery by mDNS, in the shape go-libp2p's mdns (upstream's) uses:
 * the service is `<rendezvous>.local`; each node answers a PTR query with its
 * instance, an SRV and A records for it, and a TXT record of
 * `dnsaddr=<multiaddr>/p2p/<PeerID>` entries.
 *
 * Not `@libp2p/mdns`: it answers with PTR and TXT only, and Go's zeroconf
 * drops an entry that has no address record, so a Go EdgeMesh never found
 * us (test/e2e/tunnel/mdns-interop.test.ts). `multicast-dns` does the
 * socket work.
 */
import { randomBytes } from 'node:crypto'
import type { Logger } from '../observability/logger.ts'

/** A peer announced on the LAN: its PeerID and addresses (multiaddrs without `/p2p`). */
export interface LanPeer {
  peerId: string
  addrs: string[]
}

export interface MdnsDiscoveryInit {
  /** Upstream's `rendezvous` (default `EDGEMESH_PLAYGOUND`). */
  serviceName: string
  peerId: string
  /** This node's dialable multiaddrs (with or without `/p2p`), read for every answer. */
  addresses: () => string[]
  /** @default 10000 */
  queryIntervalMs?: number
  /** @default 5353 (tests may use another) */
  port?: number
}

type MulticastDns = import('multicast-dns').MulticastDNS
type Packet = import('dns-packet').Packet

const TTL = 120

export class MdnsDiscovery {
  readonly #log: Logger
  readonly #onPeer: (peer: LanPeer) => void
  readonly #init: MdnsDiscoveryInit
  readonly #service: string
  // 32 random characters, as go-libp2p names its instance: nobody can tell our instance from the name.
  readonly #instance = randomBytes(16).toString('hex')
  #mdns: MulticastDns | undefined
  #timer: NodeJS.Timeout | undefined

  constructor (deps: { logger: Logger, onPeer: (peer: LanPeer) => void }, init: MdnsDiscoveryInit) {
    this.#log = deps.logger
    this.#onPeer = deps.onPeer
    this.#init = init
    this.#service = `${init.serviceName}.local`
  }

  async start (): Promise<void> {
    if (this.#mdns !== undefined) return
    const { default: multicastDns } = await import('multicast-dns')
    const mdns = multicastDns({ port: this.#init.port ?? 5353 })
    mdns.on('query', (query: Packet) => this.#answer(query))
    mdns.on('response', (response: Packet) => this.#read(response))
    mdns.on('warning', (err: Error) => this.#log.debug('mDNS warning', { err: err.message }))
    mdns.on('error', (err: Error) => this.#log.warn('mDNS error', { err: err.message }))
    this.#mdns = mdns
    const ask = (): void => { mdns.query({ questions: [{ name: this.#service, type: 'PTR' }] }) }
    ask()
    this.#timer = setInterval(ask, this.#init.queryIntervalMs ?? 10_000)
    this.#timer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    const mdns = this.#mdns
    this.#mdns = undefined
    if (mdns !== undefined) await new Promise<void>(resolve => { mdns.destroy(() => resolve()) })
  }

  #answer (query: Packet): void {
    const asked = (query.questions ?? []).some(q => q.type === 'PTR' && q.name.toLowerCase() === this.#service.toLowerCase())
    if (!asked || this.#mdns === undefined) return
    const addrs = this.#init.addresses()
      .map(a => a.replace(/\/p2p\/[^/]+$/, ''))
      .filter(a => !isHostOnly(a))
    if (addrs.length === 0) return
    const instance = `${this.#instance}.${this.#service}`
    const host = `${this.#instance}.local`
    const port = Number(/\/tcp\/(\d+)/.exec(addrs[0] as string)?.[1] ?? 4001)
    const ips = [...new Set(addrs.map(a => /^\/ip4\/([\d.]+)\//.exec(a)?.[1]).filter((ip): ip is string => ip !== undefined))]
    this.#mdns.respond({
      answers: [{ name: this.#service, type: 'PTR', class: 'IN', ttl: TTL, data: instance }],
      additionals: [
        { name: instance, type: 'SRV', class: 'IN', ttl: TTL, data: { priority: 0, weight: 0, port, target: host } },
        { name: instance, type: 'TXT', class: 'IN', ttl: TTL, data: addrs.map(a => `dnsaddr=${a}/p2p/${this.#init.peerId}`) },
        ...ips.map(ip => ({ name: host, type: 'A' as const, class: 'IN' as const, ttl: TTL, data: ip }))
      ]
    })
  }

  #read (response: Packet): void {
    const records = [...(response.answers ?? []), ...(response.additionals ?? [])]
    const instances = records
      .filter(r => r.type === 'PTR' && r.name.toLowerCase() === this.#service.toLowerCase())
      .map(r => String((r as { data: unknown }).data).toLowerCase())
    for (const instance of new Set(instances)) {
      if (instance.startsWith(`${this.#instance}.`)) continue
      const entries = records
        .filter(r => r.type === 'TXT' && r.name.toLowerCase() === instance)
        .flatMap(r => ([] as unknown[]).concat((r as { data: unknown }).data))
        .map(d => Buffer.isBuffer(d) ? d.toString() : String(d))
        .filter(d => d.startsWith('dnsaddr='))
        .map(d => d.slice('dnsaddr='.length))
      const byPeer = new Map<string, string[]>()
      for (const entry of entries) {
        const m = /^(.*)\/p2p\/([^/]+)$/.exec(entry)
        if (m === null || m[2] === this.#init.peerId) continue
        byPeer.set(m[2] as string, [...(byPeer.get(m[2] as string) ?? []), m[1] as string])
      }
      for (const [peerId, addrs] of byPeer) this.#onPeer({ peerId, addrs })
    }
  }
}

/** Addresses only this host can use: loopback, and circuits (a relay's, not ours to announce or dial on a LAN). */
export function isHostOnly (multiaddr: string): boolean {
  return multiaddr.startsWith('/ip4/127.') || multiaddr.startsWith('/ip6/::1/') || multiaddr.includes('/p2p-circuit')
}
