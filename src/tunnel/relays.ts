/**
 * The relays this node uses: reservations on every relay (HA), reconnecting
 * lost ones on upstream's heartbeat, applying `relayNodes` edits, and naming
 * why a relay cannot be used (the PSK, or the network).
 */
import { connectWithin } from '../net/connect.ts'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../observability/logger.ts'
import type { PeerDirectory } from './peer-directory.ts'
import type { TunnelMetrics } from './metrics.ts'
import { tcpAddr } from './host.ts'

/** How often a relay whose connection dropped is retried until it is back. */
const RECOVER_MS = 2000

/** A relay and the TCP addresses other nodes dial it at (`advertiseAddress` × `listenPort`); `host` is an IP or a DNS name. */
export interface RelayNode { nodeName: string, addresses: ReadonlyArray<{ host: string, port: number }> }

/** A relay in use: its PeerID is known (derived, or proven by a handshake and pinned). */
export interface RelayEntry { nodeName: string, peerId: PeerId, addrs: Multiaddr[] }

/** The outcome of a handshake with one relay. */
export interface RelayProbe {
  nodeName: string
  addresses: string[]
  ok: boolean
  /** Why it failed: `psk` (the handshake failed: another PSK, or not an EdgeMesh peer) or `unreachable`. */
  reason?: 'psk' | 'unreachable'
  error?: string
}

/** Which relays a `relayNodes` edit adds and removes, by name. */
export function diffRelays (before: readonly string[], after: readonly string[]): { added: string[], removed: string[] } {
  const b = new Set(before)
  const a = new Set(after)
  return { added: [...a].filter(n => !b.has(n)), removed: [...b].filter(n => !a.has(n)) }
}

/** Circuits to a peer through each relay (other than the peer itself). */
export function circuitsTo (relays: readonly RelayEntry[], peerId: string): string[] {
  return relays.filter(r => r.peerId.toString() !== peerId)
    .flatMap(r => r.addrs.map(a => `${a.toString()}/p2p/${r.peerId.toString()}/p2p-circuit/p2p/${peerId}`))
}

/**
 * Where to dial a peer: a relay at its configured addresses; anyone else at
 * the LAN addresses mDNS found, then through every relay's circuit. Not
 * whatever the peer store learned: identify hands us the peer's LAN
 * addresses, and on another site those are unreachable (or another host) and
 * can stall a dial for seconds. libp2p still prefers a direct connection it
 * already has.
 */
export function dialTargets (relays: readonly RelayEntry[], nodeName: string, peerId: string, lan: readonly Multiaddr[]): string[] {
  const relay = relays.find(r => r.nodeName === nodeName)
  if (relay !== undefined) return relay.addrs.map(a => `${a.toString()}/p2p/${peerId}`)
  return [...lan.map(String), ...circuitsTo(relays, peerId)]
}

/** libp2p errors that mean TCP connected and the handshake failed: another PSK garbles pnet, and the peer then looks like anything. */
const HANDSHAKE_ERRORS = new Set(['EncryptionFailedError', 'InvalidCryptoExchangeError', 'UnexpectedPeerError', 'UnsupportedProtocolError', 'MuxerUnavailableError', 'ProtocolError', 'InvalidMessageError', 'UnexpectedEOFError'])

/**
 * Why a dial to a relay failed. A peer with another PSK sometimes answers the
 * garbled handshake with an error and sometimes just waits: when the dial
 * failed but a plain TCP connect succeeds, the handshake is what failed.
 */
export async function classifyDialFailure (err: Error, addrs: ReadonlyArray<{ host: string, port: number }>, probeMs = 1500): Promise<'psk' | 'unreachable'> {
  const names = [err.name, ...(err instanceof AggregateError ? err.errors.map((e: Error) => e.name) : []), (err.cause as Error | undefined)?.name]
  if (names.some(n => n !== undefined && HANDSHAKE_ERRORS.has(n))) return 'psk'
  for (const a of addrs) {
    const open = await connectWithin({ host: a.host, port: a.port }, probeMs).then(s => { s.destroy(); return true }, () => false)
    if (open) return 'psk'
  }
  return 'unreachable'
}

interface RelaysDeps {
  logger: Logger
  directory: PeerDirectory
  metrics: () => TunnelMetrics | undefined
  /** Called when the set of relays in use changed (the data path parks on them). */
  onChange: () => void
}

export class Relays {
  readonly #log: Logger
  readonly #deps: RelaysDeps
  readonly #nodeName: string
  readonly #reserve: boolean
  readonly #isRelay: boolean
  #configured: readonly RelayNode[]
  #entries: RelayEntry[] = []
  #node: Libp2p | undefined
  #multiaddr: ((a: string) => Multiaddr) | undefined
  #resolving = false
  /** Relays whose connection dropped, by name, until they are back; retried every RECOVER_MS meanwhile. */
  readonly #lost = new Set<string>()
  #recovery: NodeJS.Timeout | undefined
  #keeping = false

  constructor (deps: RelaysDeps, init: { nodeName: string, relayNodes: readonly RelayNode[], reserve: boolean }) {
    this.#log = deps.logger
    this.#deps = deps
    this.#nodeName = init.nodeName
    this.#configured = init.relayNodes
    this.#isRelay = init.relayNodes.some(r => r.nodeName === init.nodeName)
    this.#reserve = init.reserve && !this.#isRelay
  }

  /** This node is one of the configured relays (decided at start: changing it needs a restart). */
  get isRelay (): boolean {
    return this.#isRelay
  }

  /** Relays in use, in `relayNodes` order. */
  list (): readonly RelayEntry[] {
    return this.#entries
  }

  configured (): readonly RelayNode[] {
    return this.#configured
  }

  /** This node's configured advertise addresses when it is a relay. */
  ownAddresses (): ReadonlyArray<{ host: string, port: number }> {
    return this.#configured.find(r => r.nodeName === this.#nodeName)?.addresses ?? []
  }

  /**
   * Before the host exists: the relays whose PeerIDs follow from the config
   * (compat mode), and the circuit addresses to listen on for reservations.
   */
  async prepare (multiaddr: (a: string) => Multiaddr): Promise<string[]> {
    this.#multiaddr = multiaddr
    this.#entries = await this.#fromConfig(this.#configured, [])
    return this.#reserve ? this.#entries.flatMap(r => r.addrs.map(a => `${a.toString()}/p2p/${r.peerId.toString()}/p2p-circuit`)) : []
  }

  /** After the host started: connect to every relay so failures are named now; reservations follow. */
  async attach (node: Libp2p): Promise<void> {
    this.#node = node
    for (const r of this.#entries) await node.peerStore.merge(r.peerId, { multiaddrs: r.addrs })
    for (const r of this.#entries) {
      node.dial(r.peerId, { signal: AbortSignal.timeout(10_000) }).then(() => {
        this.#log.info('connected to relay', { relay: r.nodeName })
      }, async (err: Error) => { await this.#dialFailed(r.nodeName, r.addrs, err) })
    }
    node.addEventListener('peer:disconnect', evt => { this.#disconnected(evt.detail.toString()) })
    // Relays known only by address (secure mode) are resolved in the background: a relay that is down must not hold up the start.
    if (this.#entries.length < this.#configured.filter(r => r.nodeName !== this.#nodeName).length) {
      this.#resolve().catch((err: Error) => this.#log.debug('relays not resolved yet', { err: err.message }))
    }
  }

  detach (): void {
    this.#node = undefined
    clearInterval(this.#recovery)
    this.#recovery = undefined
    this.#lost.clear()
  }

  /**
   * A relay's connection dropped: say so at once (failover to the other
   * relays is silent otherwise), and retry every few seconds instead of
   * waiting for the heartbeat, so its return is noticed within seconds.
   */
  #disconnected (peerId: string): void {
    const node = this.#node
    const relay = this.#entries.find(r => r.peerId.toString() === peerId)
    if (node === undefined || relay === undefined || node.getConnections(relay.peerId).length > 0 || this.#lost.has(relay.nodeName)) return
    this.#lost.add(relay.nodeName)
    const left = this.#entries.filter(r => !this.#lost.has(r.nodeName)).map(r => r.nodeName)
    this.#log.warn('relay connection lost; reconnecting', { relay: relay.nodeName, relaysLeft: left })
    this.#recovery ??= setInterval(() => {
      this.#keep().catch((err: Error) => this.#log.debug('relay recovery failed', { err: err.message }))
    }, RECOVER_MS)
    this.#recovery.unref()
  }

  /** Notes a relay that is connected (and reserved on, where this node reserves) again. */
  #back (name: string): void {
    if (!this.#lost.delete(name)) return
    this.#log.info('relay connection back', { relay: name })
    if (this.#lost.size === 0) { clearInterval(this.#recovery); this.#recovery = undefined }
  }

  /**
   * Upstream's heartbeat: resolve relays not in use yet, reconnect lost ones
   * and, on nodes that reserve, listen on a relay's circuit again once its
   * reservation is gone (a restarted relay forgets them; js-libp2p does not
   * renew them by itself).
   */
  async beat (): Promise<void> {
    await this.#resolve()
    await this.#keep()
  }

  /**
   * Applies a new `relayNodes` list without a restart: new relays are dialed
   * and reserved on at once, removed ones are no longer used for new
   * connections. Becoming (or ceasing to be) a relay needs a restart.
   */
  async update (relayNodes: readonly RelayNode[]): Promise<void> {
    if (relayNodes.some(r => r.nodeName === this.#nodeName) !== this.isRelay) {
      this.#log.warn('this node was added to or removed from relayNodes: restart the agent to apply that part', { node: this.#nodeName })
    }
    const before = this.#entries.map(r => r.nodeName)
    this.#configured = relayNodes
    if (this.#multiaddr === undefined) return
    this.#entries = await this.#fromConfig(relayNodes, this.#entries)
    for (const r of this.#entries) await this.#node?.peerStore.merge(r.peerId, { multiaddrs: r.addrs })
    this.#log.info('relayNodes updated', diffRelays(before, relayNodes.filter(r => r.nodeName !== this.#nodeName).map(r => r.nodeName)))
    await this.beat()
    this.#deps.onChange()
  }

  /** Dials every relay once (a full pnet + Noise handshake) and reports each. */
  async probe (timeoutMs: number): Promise<RelayProbe[]> {
    const node = this.#node
    if (node === undefined) return []
    return await Promise.all(this.#configured.filter(r => r.nodeName !== this.#nodeName).map(async (r): Promise<RelayProbe> => {
      const entry = this.#entries.find(e => e.nodeName === r.nodeName)
      const addrs = r.addresses.map(a => this.#addr(a))
      try {
        await node.dial(entry !== undefined ? addrs.map(a => a.encapsulate(`/p2p/${entry.peerId.toString()}`)) : addrs, { signal: AbortSignal.timeout(timeoutMs) })
        return { nodeName: r.nodeName, addresses: addrs.map(String), ok: true }
      } catch (err) {
        const reason = await classifyDialFailure(err as Error, r.addresses)
        this.#deps.metrics()?.handshakeFailures.inc({ reason })
        return { nodeName: r.nodeName, addresses: addrs.map(String), ok: false, reason, error: (err as Error).message }
      }
    }))
  }

  #addr (a: { host: string, port: number }): Multiaddr {
    return (this.#multiaddr as (a: string) => Multiaddr)(tcpAddr(a))
  }

  /** Entries for `relayNodes`: derived where the mode allows, kept (with new addresses) where they were resolved. */
  async #fromConfig (relayNodes: readonly RelayNode[], current: readonly RelayEntry[]): Promise<RelayEntry[]> {
    const out: RelayEntry[] = []
    for (const r of relayNodes) {
      if (r.nodeName === this.#nodeName) continue
      const addrs = r.addresses.map(a => this.#addr(a))
      const peerId = await this.#deps.directory.configuredRelayId(r.nodeName) ?? current.find(e => e.nodeName === r.nodeName)?.peerId
      if (peerId !== undefined) out.push({ nodeName: r.nodeName, peerId, addrs })
    }
    return out
  }

  /** Counts and logs a failed relay dial with its reason. */
  async #dialFailed (relay: string, addrs: readonly Multiaddr[], err: Error): Promise<void> {
    const configured = this.#configured.find(r => r.nodeName === relay)?.addresses ?? []
    const reason = await classifyDialFailure(err, configured)
    this.#deps.metrics()?.handshakeFailures.inc({ reason })
    this.#log.warn(reason === 'psk' ? 'PSK mismatch or not an EdgeMesh peer' : 'relay unreachable', { relay, addresses: addrs.map(String), err: err.message })
  }

  /**
   * Relays whose PeerID the config does not give (secure mode): dial each at
   * its address, have the directory check it is that relay, and register
   * this node's name with every relay in use.
   */
  async #resolve (): Promise<void> {
    const node = this.#node
    if (node === undefined || this.#resolving) return
    this.#resolving = true
    let added = false
    try {
      for (const r of this.#configured) {
        if (r.nodeName === this.#nodeName) continue
        let entry = this.#entries.find(e => e.nodeName === r.nodeName)
        if (entry === undefined) {
          const addrs = r.addresses.map(a => this.#addr(a))
          let peerId: PeerId
          try {
            peerId = (await node.dial(addrs, { signal: AbortSignal.timeout(10_000) })).remotePeer
          } catch (err) {
            await this.#dialFailed(r.nodeName, addrs, err as Error)
            continue
          }
          const admitted = await this.#deps.directory.admitRelay(peerId, r.nodeName).catch((err: Error) => {
            this.#log.warn('relay did not say who it is: not used', { relay: r.nodeName, err: err.message })
            return false
          })
          if (!admitted) {
            await node.hangUp(peerId).catch((err: Error) => this.#log.debug('hang-up failed', { relay: r.nodeName, err: err.message }))
            continue
          }
          await node.peerStore.merge(peerId, { multiaddrs: addrs })
          entry = { nodeName: r.nodeName, peerId, addrs }
          this.#log.info('connected to relay', { relay: r.nodeName, peerId: peerId.toString() })
        }
        // Every pass: a restarted relay has forgotten the names.
        await this.#deps.directory.register(entry)
        // Used (and reserved on) only once registered: a reservation tells peers they can look this node up.
        if (!this.#entries.includes(entry)) { this.#entries.push(entry); added = true }
      }
    } finally {
      this.#resolving = false
    }
    if (added) {
      const order = this.#configured.map(r => r.nodeName)
      this.#entries.sort((a, b) => order.indexOf(a.nodeName) - order.indexOf(b.nodeName))
      await this.#keep()
      this.#deps.onChange()
    }
  }

  /** Redials lost relays, and reserves again where a reservation is gone; one pass at a time. */
  async #keep (): Promise<void> {
    const node = this.#node
    if (node === undefined || this.#keeping) return
    this.#keeping = true
    try {
      await this.#keepOnce(node)
    } finally {
      this.#keeping = false
    }
  }

  async #keepOnce (node: Libp2p): Promise<void> {
    const held = node.getMultiaddrs().map(String).filter(a => a.includes('/p2p-circuit'))
    for (const r of this.#entries) {
      const id = r.peerId.toString()
      if (this.#reserve && !held.some(a => a.includes(`/p2p/${id}/p2p-circuit`))) {
        // Not part of the Libp2p interface: the transport manager is the only way to listen again.
        const tm = (node as unknown as { components?: { transportManager?: { listen: (addrs: Multiaddr[]) => Promise<void> } } }).components?.transportManager
        await tm?.listen(r.addrs.map(a => a.encapsulate(`/p2p/${id}/p2p-circuit`))).then(() => {
          this.#log.info('reservation re-established', { relay: r.nodeName })
          this.#back(r.nodeName)
        }, (err: Error) => this.#log.debug('relay reservation not re-established yet', { relay: r.nodeName, err: err.message }))
      } else if (node.getConnections(r.peerId).length === 0) {
        await node.dial(r.peerId, { signal: AbortSignal.timeout(5000) })
          .then(() => { this.#back(r.nodeName) }, (err: Error) => this.#log.debug('relay not reconnected yet', { relay: r.nodeName, err: err.message }))
      } else {
        this.#back(r.nodeName)
      }
    }
  }
}
