/**
 * EdgeTunnel: the mesh's control plane on a libp2p host compatible with
 * EdgeMesh v1.17 (TCP, pnet from the PSK, Noise, Yamux, circuit relay v2,
 * PeerIDs derived from node names): names → PeerIDs, reservations on every
 * relay, discovery, and where peers' data paths listen. It also carries
 * upstream's proxy protocol (`proxyTransport`), one of the two peer
 * transports the composition root hands to the `PeerDialer`.
 *
 * Relay nodes (`relayNodes`) run the relay service; every other node holds a
 * reservation on every relay, so a node behind NAT is reachable through any
 * of them.
 */
import type { Server } from 'node:net'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { RepeatingTask } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Registry } from 'prom-client'
import type { Component } from '../lifecycle/component.ts'
import { LifecycleGroup } from '../lifecycle/group.ts'
import { startFailure } from '../errors.ts'
import type { Logger } from '../observability/logger.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import { pskFileExposure, readPnetKey } from '../mesh/psk.ts'
import type { DataPathRoutes } from '../datapath/transport.ts'
import { PROXY_PROTOCOL } from './messages.ts'
import type { PnetImplementation } from './pnet.ts'
import { TunnelDialError } from './errors.ts'
import { readStreamLine, sendLine } from './identities.ts'
import { createHost, tcpAddr } from './host.ts'
import { TunnelMetrics } from './metrics.ts'
import type { PeerInfo } from './metrics.ts'
import { CompatDirectory, SecureDirectory, closeQuietly } from './peer-directory.ts'
import type { PeerDirectory } from './peer-directory.ts'
import { Relays, circuitsTo, dialTargets } from './relays.ts'
import type { RelayNode, RelayProbe } from './relays.ts'
import { ProxyProtocol } from './proxy-protocol.ts'
import { DataPathDirectory } from './datapath-routes.ts'
import type { DataPathEndpoint } from './datapath-routes.ts'
import { Discovery } from './discovery.ts'

const net = process.getBuiltinModule('node:net')

export type { PeerInfo } from './metrics.ts'
export type { RelayNode, RelayProbe } from './relays.ts'
export { TunnelMetrics } from './metrics.ts'
export { DATAPATH_PROTOCOL } from './datapath-routes.ts'

export interface EdgeTunnelInit {
  nodeName: string
  listenPort: number
  /** Addresses to listen on. @default ['0.0.0.0'] */
  listenAddresses?: readonly string[]
  relayNodes: readonly RelayNode[]
  /** PSK file (`psk.path`); undefined when `psk.enable` is false. */
  pskFile: string | undefined
  /** Inbound proxy streams at once. @default 10240 */
  maxInboundStreams?: number
  /** Relay service limits (relay nodes only). */
  relay?: { maxReservations?: number, reservationTtlMs?: number }
  /** Hold reservations on the relays (a node that only dials out, like `edgemesh doctor`, does not). @default true */
  reserve?: boolean
  /** How often lost relay connections and reservations are re-established (`heartbeatPeriod`). @default 120000 */
  heartbeatMs?: number
  /** XSalsa20 for the private network: libsodium (`native`) or the `xsalsa20` WebAssembly (`wasm`, also the fallback when the addon does not load). @default 'native' */
  pnet?: PnetImplementation
  /**
   * Largest Yamux receive window per stream: what one stream may have in
   * flight, and so what a relay or a slow reader buffers for it. Yamux starts
   * at 256 KiB and grows towards this on fast links. @default 1048576
   */
  maxStreamWindowBytes?: number
  /**
   * `secure`: a random key kept in `keyFile` (0600), peers' PeerIDs learned
   * through the relays and pinned in `pinsFile` (see identities.ts). Absent:
   * upstream's keys derived from node names (compatible with Go EdgeMesh).
   */
  identity?: { mode: 'secure', keyFile: string, pinsFile: string }
  /** LAN discovery by mDNS under upstream's rendezvous name (`<serviceName>.local`); peers found are dialed directly. */
  mdns?: { serviceName: string }
  /** Upstream's DHT discovery: provider records for the rendezvous on both of its DHTs, looked up every `findIntervalMs`. */
  dht?: { rendezvous: string, findIntervalMs: number }
  /** The edge CNI's pod CIDRs: addresses there are never announced or dialed as a node's data path. */
  podCidrs?: readonly string[]
}

export interface EdgeTunnelDeps {
  logger: Logger
  metrics: Registry
  copied?: CopiedStreams | undefined
  /** Our TLS data path, when it runs: the tunnel tells peers where it listens and which relays it parks on. */
  dataPath?: DataPathEndpoint | undefined
}

/** An open connection that does not carry a new stream within this long is considered dead. */
export const STALE_CONNECTION_MS = 750

/**
 * A new stream on an existing connection did not open within
 * STALE_CONNECTION_MS: wait for it when the peer sent data just now (the
 * connection is busy, and the stream's frames queue behind the others'), else
 * treat the connection as dead (a relay that just died can leave it looking
 * open) and dial again. Hanging up a busy one would cut every stream it carries.
 */
export function slowStreamAction (heardAgoMs: number): 'wait' | 'redial' {
  return heardAgoMs < STALE_CONNECTION_MS ? 'wait' : 'redial'
}

/** A step of the tunnel's start, undone in reverse when a later one fails. */
function step (name: string, start: () => Promise<void>, stop: () => Promise<void> | void): Component {
  return { name, start, stop: async () => { await stop() } }
}

export class EdgeTunnel implements Component {
  readonly name = 'tunnel'
  readonly #log: Logger
  readonly #deps: EdgeTunnelDeps
  readonly #init: EdgeTunnelInit
  readonly #directory: PeerDirectory
  readonly #relays: Relays
  readonly #discovery: Discovery
  readonly #routes: DataPathDirectory | undefined
  readonly #proxy: ProxyProtocol
  #metrics: TunnelMetrics | undefined
  #node: Libp2p | undefined
  #multiaddr: ((addr: string) => Multiaddr) | undefined
  #group: LifecycleGroup | undefined
  /** When data last arrived from each peer (performance.now()): a busy connection is not a dead one. */
  readonly #heardAt = new Map<string, number>()

  constructor (deps: EdgeTunnelDeps, init: EdgeTunnelInit) {
    this.#log = deps.logger
    this.#deps = deps
    this.#init = init
    const host = {
      ask: async (peerId: PeerId, protocol: string, request: unknown, signal: AbortSignal) => await this.#ask(peerId, protocol, request, signal),
      relays: () => this.#relays.list(),
      connected: () => new Set((this.#node?.getConnections() ?? []).map(c => c.remotePeer.toString()))
    }
    // The identity mode is chosen here, once.
    this.#directory = init.identity?.mode === 'secure'
      ? new SecureDirectory({ logger: deps.logger, host }, { nodeName: init.nodeName, keyFile: init.identity.keyFile, pinsFile: init.identity.pinsFile })
      : new CompatDirectory({ logger: deps.logger, host }, init.nodeName)
    this.#relays = new Relays({
      logger: deps.logger,
      directory: this.#directory,
      metrics: () => this.#metrics,
      onChange: () => { this.#routes?.refreshRelays(false).catch((err: Error) => this.#log.debug('relay data paths not learned', { err: err.message })) }
    }, { nodeName: init.nodeName, relayNodes: init.relayNodes, reserve: init.reserve !== false })
    this.#discovery = new Discovery({ logger: deps.logger, directory: this.#directory, circuitsTo: id => circuitsTo(this.#relays.list(), id) },
      { nodeName: init.nodeName, mdns: init.mdns, dht: init.dht })
    this.#proxy = new ProxyProtocol({
      logger: deps.logger,
      metrics: () => this.#metrics,
      copied: deps.copied,
      opener: {
        open: async (nodeName, protocol, signal) => await this.#open(nodeName, protocol, signal),
        heardFrom: peer => () => { this.#heardAt.set(peer, performance.now()) }
      }
    })
    if (deps.dataPath !== undefined) {
      this.#routes = new DataPathDirectory({
        logger: deps.logger,
        dataPath: deps.dataPath,
        host: {
          nodeName: init.nodeName,
          node: () => this.#node,
          ask: async (peerId, protocol, request, signal, targets) => await this.#ask(peerId, protocol, request, signal, targets),
          peerIdOf: async (nodeName, signal) => await this.#directory.peerIdOf(nodeName, signal),
          dialTargets: (nodeName, peerId) => this.#dialTargets(nodeName, peerId).map(String),
          relays: () => this.#relays.list(),
          configuredRelays: () => this.#relays.configured(),
          ownAddresses: () => this.#relays.ownAddresses(),
          podCidrs: init.podCidrs ?? []
        }
      })
    }
  }

  /** Upstream's `/libp2p/tunnel-proxy/1.0.0` as a peer transport. */
  get proxyTransport (): ProxyProtocol {
    return this.#proxy
  }

  /** Where peers' data paths listen; undefined when this node runs no data path. */
  get dataPathRoutes (): DataPathRoutes | undefined {
    return this.#routes
  }

  get isRelay (): boolean {
    return this.#relays.isRelay
  }

  /** This node's PeerID, once started. */
  peerId (): string | undefined {
    return this.#node?.peerId.toString()
  }

  /** Listening and announced addresses, once started. */
  addresses (): string[] {
    return this.#node?.getMultiaddrs().map(a => a.toString()) ?? []
  }

  /** Started, and (unless this node is a relay or has none) holding a reservation on at least one relay. */
  isReady (): boolean {
    if (this.#node === undefined) return false
    if (this.isRelay || this.#relays.list().length === 0 || this.#init.reserve === false) return true
    return this.addresses().some(a => a.includes('/p2p-circuit'))
  }

  /** Connected peers with their path; node names where known (relays, peers we dialed, peers that dialed us). */
  peers (): PeerInfo[] {
    const node = this.#node
    if (node === undefined) return []
    const reservedOn = new Set(this.addresses().filter(a => a.includes('/p2p-circuit')).map(a => /\/p2p\/(\w+)\/p2p-circuit/.exec(a)?.[1]))
    return node.getConnections().map(conn => {
      const id = conn.remotePeer.toString()
      const relayId = /\/p2p\/(\w+)\/p2p-circuit/.exec(conn.remoteAddr.toString())?.[1]
      return {
        reserved: reservedOn.has(id),
        ...(relayId !== undefined ? { via: this.#directory.nameOf(relayId) ?? relayId } : {}),
        ...(conn.rtt !== undefined ? { rttMs: Math.round(conn.rtt * 10) / 10 } : {}),
        nodeName: this.#directory.nameOf(id),
        peerId: id,
        addresses: [conn.remoteAddr.toString()],
        path: conn.remoteAddr.toString().includes('/p2p-circuit') ? 'relay' : 'direct',
        since: conn.timeline.open
      }
    })
  }

  async start (): Promise<void> {
    if (this.#group !== undefined) return
    const init = this.#init
    let node: Libp2p | undefined
    let heartbeat: RepeatingTask | undefined
    let unshare: (() => void) | undefined
    const group = new LifecycleGroup('tunnel', [
      step('host', async () => {
        const pnetKey = init.pskFile !== undefined ? await readPnetKey(init.pskFile) : undefined
        const exposure = init.pskFile !== undefined ? await pskFileExposure(init.pskFile) : undefined
        if (exposure !== undefined) this.#log.warn('the PSK file is readable by others', { file: init.pskFile, hint: exposure })
        await this.#directory.load()
        const { multiaddr } = await import('@multiformats/multiaddr')
        this.#multiaddr = multiaddr
        const circuits = await this.#relays.prepare(multiaddr)
        const host = await createHost({
          privateKey: await this.#directory.privateKey(),
          listen: [...(init.listenAddresses ?? ['0.0.0.0']).map(a => `/ip4/${a}/tcp/${init.listenPort}`), ...circuits],
          announce: this.#relays.ownAddresses().map(tcpAddr),
          pnetKey,
          pnet: init.pnet,
          maxStreamWindowBytes: init.maxStreamWindowBytes ?? 1024 * 1024,
          relay: this.isRelay ? { maxReservations: init.relay?.maxReservations ?? 128, reservationTtlMs: init.relay?.reservationTtlMs ?? 60 * 60 * 1000 } : undefined,
          dht: init.dht !== undefined,
          podCidrs: init.podCidrs
        }, this.#deps.copied)
        node = host.node
        await this.#handle(host.node)
        await host.node.start()
        unshare = this.#deps.dataPath?.shareTunnelPort(tcpServers(host.node))
        this.#node = host.node
        this.#metrics ??= new TunnelMetrics(this.#deps.metrics, () => this.peers())
        this.#log.info('tunnel listening', { peerId: host.node.peerId.toString(), relay: this.isRelay, addresses: this.addresses(), pnet: host.pnet })
      }, async () => {
        this.#node = undefined
        this.#heardAt.clear()
        unshare?.()
        await node?.stop()
      }),
      step('relays', async () => { await this.#relays.attach(node as Libp2p) }, () => { this.#relays.detach() }),
      step('discovery', async () => { await this.#discovery.start(node as Libp2p, this.#multiaddr as (a: string) => Multiaddr) }, async () => { await this.#discovery.stop() }),
      step('datapath-routes', async () => { await this.#routes?.start(node as Libp2p) }, () => { this.#routes?.stop() }),
      step('heartbeat', async () => {
        // One run at a time; a run that is slower than the period delays the next.
        const { repeatingTask } = await import('@libp2p/utils')
        heartbeat = repeatingTask(async () => {
          await this.#relays.beat().catch((err: Error) => this.#log.debug('relay heartbeat failed', { err: err.message }))
        }, init.heartbeatMs ?? 120_000)
        heartbeat.start()
      }, () => { heartbeat?.stop() })
    ], this.#log)
    try {
      await group.start()
    } catch (err) {
      // The group rolled back every step; callers see why it failed, not the wrapper.
      throw startFailure(err)
    }
    this.#group = group
  }

  async stop (): Promise<void> {
    const group = this.#group
    this.#group = undefined
    await group?.stop()
  }

  /** Dials every relay once (a full pnet + Noise handshake) and reports each. */
  async probeRelays (timeoutMs = 5000): Promise<RelayProbe[]> {
    if (this.#node === undefined) throw new TunnelDialError('', 'the tunnel is not running')
    return await this.#relays.probe(timeoutMs)
  }

  /** Applies a new `relayNodes` list without a restart (see Relays.update). */
  async updateRelays (relayNodes: readonly RelayNode[]): Promise<void> {
    await this.#relays.update(relayNodes)
  }

  /** The protocol handlers every node serves. */
  async #handle (node: Libp2p): Promise<void> {
    await node.handle(PROXY_PROTOCOL, (stream, connection) => {
      this.#proxy.serve(stream, connection.remotePeer.toString()).catch((err: Error) => this.#log.debug('proxy stream failed', { err: err.message }))
    }, { runOnLimitedConnection: true, maxInboundStreams: this.#init.maxInboundStreams ?? 10_240 })
    await this.#discovery.handle(node)
    await this.#directory.handle(node, this.isRelay)
    node.addEventListener('peer:disconnect', (evt) => { this.#heardAt.delete(evt.detail.toString()) })
  }

  #dialTargets (nodeName: string, peerId: PeerId): Multiaddr[] {
    const multiaddr = this.#multiaddr as (a: string) => Multiaddr
    const id = peerId.toString()
    return dialTargets(this.#relays.list(), nodeName, id, this.#discovery.lanAddresses(id)).map(a => multiaddr(a))
  }

  /** A stream for `protocol` to the agent on `nodeName`. */
  async #open (nodeName: string, protocol: string, signal: AbortSignal): Promise<{ stream: Stream, peer: string }> {
    const node = this.#node
    if (node === undefined) throw new TunnelDialError(nodeName, 'the tunnel is not running')
    const peerId = await this.#directory.peerIdOf(nodeName, signal)
    try {
      return { stream: await this.#openStream(node, peerId, this.#dialTargets(nodeName, peerId), protocol, signal), peer: peerId.toString() }
    } catch (err) {
      throw new TunnelDialError(nodeName, (err as Error).message, { cause: err })
    }
  }

  /**
   * Opens a stream, on an existing connection when there is one. If that
   * does not answer quickly, slowStreamAction decides between waiting and
   * dialing again (the other relays' circuits, or a direct address).
   */
  async #openStream (node: Libp2p, peerId: PeerId, targets: Multiaddr[], protocol: string, signal: AbortSignal): Promise<Stream> {
    const peer = peerId.toString()
    if (node.getConnections(peerId).length > 0) {
      try {
        return await node.dialProtocol(peerId, protocol, { signal: AbortSignal.any([signal, AbortSignal.timeout(STALE_CONNECTION_MS)]), runOnLimitedConnection: true })
      } catch (err) {
        // A peer that answered "not supported" (a Go EdgeMesh asked for the data path) is alive.
        if (signal.aborted || (err as Error).name === 'UnsupportedProtocolError') throw err
        if (slowStreamAction(performance.now() - (this.#heardAt.get(peer) ?? -Infinity)) === 'wait') {
          this.#log.debug('existing connection is busy; waiting for the stream', { peer })
          return await node.dialProtocol(peerId, protocol, { signal, runOnLimitedConnection: true })
        }
        this.#log.debug('existing connection did not answer; redialing', { peer, err })
        await node.hangUp(peerId).catch((e: Error) => this.#log.debug('hang-up failed', { peer, err: e.message }))
      }
    }
    return await node.dialProtocol(targets.length > 0 ? targets : peerId, protocol, { signal, runOnLimitedConnection: true })
  }

  /** One request line, one answer line, on a new stream to `peerId`. */
  async #ask (peerId: PeerId, protocol: string, request: unknown, signal: AbortSignal, targets: string[] = []): Promise<string> {
    const node = this.#node
    if (node === undefined) throw new TunnelDialError('', 'the tunnel is not running')
    const multiaddr = this.#multiaddr as (a: string) => Multiaddr
    const stream = await this.#openStream(node, peerId, targets.map(a => multiaddr(a)), protocol, signal)
    if (request !== undefined) sendLine(stream, request)
    const line = await readStreamLine(stream, signal)
    closeQuietly(stream, this.#log)
    return line
  }
}

/** The net.Server of each libp2p TCP listener (the tunnel port), for the data path to share. */
function tcpServers (node: Libp2p): Server[] {
  const manager = (node as unknown as { components?: { transportManager?: { getListeners: () => Array<{ server?: unknown }> } } }).components?.transportManager
  return (manager?.getListeners() ?? []).map(l => l.server).filter((s): s is Server => s instanceof net.Server)
}
