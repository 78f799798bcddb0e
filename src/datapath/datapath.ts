/**
 * The agent-to-agent data path: proxied TCP connections between two of our
 * agents travel over TLS 1.3 instead of libp2p (pnet + Noise + Yamux in
 * JavaScript). One proxied connection at a time per TLS connection, so the
 * kernel does the flow control and a stalled peer or stream blocks nobody
 * else; a small pool of connections that finished their handshake ahead of
 * time keeps a new proxied connection at one round trip, and a connection
 * whose proxied connection ended cleanly goes back to it (frames.ts).
 *
 * Authentication: a TLS 1.3 external PSK (with ECDHE) per node pair, derived
 * from the tunnel's PSK. A node without the PSK cannot finish a handshake,
 * and a server only accepts identities that name it.
 *
 * Behind NAT, a node parks a few idle TCP connections on every relay's data
 * port. A peer that cannot connect directly asks a relay to join it to one of
 * them; the relay then splices the two sockets byte for byte and never sees
 * the plaintext (the TLS handshake runs end to end through the splice).
 *
 * Which addresses a peer has, and whether it speaks this at all, is learned
 * over libp2p (`tunnel.ts`): a Go EdgeMesh peer keeps getting
 * `/libp2p/tunnel-proxy/1.0.0`.
 */
import type { Server, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { SecureContext, TLSSocket } from 'node:tls'
import type { Registry } from 'prom-client'
import type { Logger } from '../observability/logger.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import { cipherPreference, CONTROL_TIMEOUT_MS, DataPathKeys, KEY_EXCHANGE_GROUP, jsonLine, pairIdentity, parseChannelRequest, parseIdentity, parseTargetRequest, RELAY_MAGIC } from './wire.ts'
import { peekFirstRecord, peekUntil, readLine, untilAborted } from '../net/socket-io.ts'
import { ResumableSessions, SESSION_MAGIC } from './sessions.ts'
import { Parking, relayRequest } from './parking.ts'
import type { DataPathInit, DataPathKind, DataPathPeer, HostPort, PeerRoute, PunchedPaths } from './types.ts'
import { SharedPort } from './shared-port.ts'
import { connectWithin } from '../net/connect.ts'
import { Limiter } from '../net/limiter.ts'
import { splice } from '../net/splice.ts'
import { refuse } from '../net/refuse.ts'
import { RelayServer } from './relay-server.ts'
import { EndpointRefusedError } from '../mesh/errors.ts'
import { serveTarget } from '../mesh/serve-target.ts'
import { readPnetKey } from '../mesh/psk.ts'
import { Admission } from './admission.ts'
import { DataPathMetrics } from './metrics.ts'
import { ConnectionPool } from './pool.ts'
import { FramedStream } from './frames.ts'
import { tlsHandshake } from './tls-client.ts'
import type { Pooled } from './pool.ts'

export { DataPathMetrics } from './metrics.ts'

const net = process.getBuiltinModule('node:net')
// Loaded on first use: agents without the tunnel never pay for TLS.
let tlsModule: typeof import('node:tls') | undefined
function tls (): typeof import('node:tls') {
  tlsModule ??= process.getBuiltinModule('node:tls')
  return tlsModule
}

export type { DataPathInit, DataPathKind, DataPathPeer, HostPort, PeerRoute, PunchedPaths } from './types.ts'

const REFILL_DELAY_MS = 10
const SERVER_IDLE_MS = 120_000

export class DataPath {
  readonly #log: Logger
  readonly #init: DataPathInit
  readonly #metrics: DataPathMetrics
  readonly #ciphers = cipherPreference()
  // One OpenSSL context for every connection, both roles: building one per connection cost a
  // third of a handshake's CPU. Made on first use (not in the constructor: it loads TLS).
  #tlsContext: SecureContext | undefined
  #server: Server | undefined
  #tunnelPort: number | undefined
  #stopped = false
  readonly #sockets = new Set<Duplex>()
  readonly #peers = new Map<string, DataPathPeer>()
  readonly #directFailedAt = new Map<string, number>()
  readonly #probing = new Set<string>()
  readonly #connecting: Limiter
  /** Made again on each start: a stopped one closes what is added to it. */
  #pool: ConnectionPool
  readonly #relay: RelayServer
  /** Node side: idle connections parked on the relays, for peers that cannot reach this node directly. */
  readonly #parking: Parking
  #started = false
  readonly #admission: Admission
  readonly #copied: CopiedStreams | undefined
  /** Modules' own traffic between agents, by channel name (handleChannel). */
  readonly #channels = new Map<string, (peer: string, socket: TLSSocket) => void>()
  #keys = new DataPathKeys(new Uint8Array(0))
  #punched: PunchedPaths | undefined
  /** Connections on punched paths: resumed through a relay when the path dies. */
  readonly #sessions: ResumableSessions

  readonly name = 'datapath'

  constructor (deps: { logger: Logger, metrics: Registry, copied?: CopiedStreams }, init: DataPathInit) {
    this.#log = deps.logger
    this.#copied = deps.copied
    this.#init = init
    this.#metrics = new DataPathMetrics(deps.metrics)
    this.#connecting = new Limiter(init.maxConnecting ?? 16)
    this.#pool = this.#newPool()
    this.#admission = new Admission({ logger: deps.logger, rejected: this.#metrics.rejected }, init.admission)
    this.#relay = new RelayServer({ metrics: this.#metrics, copied: deps.copied, keys: () => this.#keys }, init.relayLimits)
    this.#sessions = new ResumableSessions({ logger: deps.logger, key: () => this.#keys.resume() }, init.sessions)
    this.#parking = new Parking({
      logger: deps.logger,
      metrics: this.#metrics,
      request: async (raw, request) => await relayRequest(raw, this.#keys, request),
      handOver: socket => { this.#serveParked(socket) }
    }, { nodeName: init.nodeName, parkedPerRelay: init.parkedPerRelay })
  }

  async start (): Promise<void> {
    if (this.#started) return
    if (this.#stopped) this.#pool = this.#newPool()
    this.#stopped = false
    const { pnetKey, pskFile } = this.#init
    if (pnetKey === undefined && pskFile === undefined) throw new Error('the data path needs the PSK')
    this.#keys = new DataPathKeys(pnetKey ?? await readPnetKey(pskFile as string))
    if (this.#init.port !== undefined) await this.#listen(this.#init.port)
    this.#started = true
    if (!this.#init.isRelay && this.#init.park !== false) this.#parking.start()
  }

  async #listen (port: number): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 15_000 }, s => { this.#accept(s) })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, this.#init.listenHost ?? '0.0.0.0', () => { server.off('error', reject); resolve() })
    })
    this.#server = server
  }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#started = false
    this.#parking.stop()
    this.#admission.stop()
    const server = this.#server
    this.#server = undefined
    for (const s of this.#sockets) s.destroy()
    this.#pool.close()
    if (server !== undefined) await new Promise(resolve => server.close(resolve))
  }

  /** The port peers reach this data path on: its own listener's, or the tunnel's it shares. */
  port (): number {
    const a = this.#server?.address()
    return typeof a === 'object' && a !== null ? a.port : this.#init.port ?? this.#tunnelPort ?? 0
  }

  /**
   * Serves on the tunnel's TCP listeners too, when this data path has no listener of its own: takes
   * the connections whose first bytes are its own (see shared-port.ts). Returns how to stop.
   */
  shareTunnelPort (servers: readonly Server[]): () => void {
    if (this.#init.port !== undefined || servers.length === 0) return () => {}
    // The tunnel's server closes only once every connection it accepted is gone: these go when it stops.
    const accepted = new Set<Socket>()
    const shared = new SharedPort({
      logger: this.#log,
      dataPath: socket => {
        if (this.#stopped) { socket.destroy(); return }
        // libp2p's listener does not allow half-open sockets; a proxied connection needs them (replies after the client's FIN).
        socket.allowHalfOpen = true
        accepted.add(socket)
        socket.once('close', () => accepted.delete(socket))
        this.#accept(socket)
      }
    })
    const detach = servers.map(server => shared.attach(server))
    const a = servers[0]?.address()
    this.#tunnelPort = typeof a === 'object' && a !== null ? a.port : undefined
    return () => {
      for (const d of detach) d()
      for (const s of accepted) s.destroy()
    }
  }

  /** Which path each peer's latest connection took. */
  peers (): DataPathPeer[] {
    return [...this.#peers.values()]
  }

  /** Relays to park on (their data path addresses); parking follows within a second. */
  setRelays (relays: Array<{ nodeName: string, address: HostPort }>): void {
    this.#parking.setRelays(relays)
  }

  /** Connections this node holds parked, per relay node name. */
  parkedOn (): Record<string, number> {
    return this.#parking.parkedOn()
  }

  /**
   * A proxied TCP connection to `target` through the agent on `route.nodeName`:
   * direct when its addresses answer, else through each relay in turn.
   */
  async dial (route: PeerRoute, target: { ip: string, port: number }, signal?: AbortSignal): Promise<{ socket: Duplex, path: DataPathKind, via?: string }> {
    const conn = await this.#request(route, { ip: target.ip, port: target.port }, `${target.ip}:${target.port}`, signal)
    await conn.answered
    return conn
  }

  /**
   * As `dial`, but resolves once the request is written (early data,
   * `src/mesh/early.ts`): bytes written now reach the endpoint once the peer
   * has connected to it. Read only after `answered`, which rejects as `dial`
   * would (`EndpointRefusedError` when the peer refused the target).
   */
  async dialEarly (route: PeerRoute, target: { ip: string, port: number }, signal?: AbortSignal): Promise<{ socket: Duplex, path: DataPathKind, via?: string, answered: Promise<void> }> {
    const conn = await this.#request(route, { ip: target.ip, port: target.port }, `${target.ip}:${target.port}`, signal)
    // A caller that drops the connection unanswered leaves no unhandled rejection.
    conn.answered.catch(() => {})
    return conn
  }

  /**
   * A connection to the agent on `route.nodeName` for a module's own traffic
   * (`channel`, e.g. the edge CNI's packets), served there by the handler
   * that module registered with `handleChannel`.
   */
  async openChannel (route: PeerRoute, channel: string, signal?: AbortSignal): Promise<{ socket: TLSSocket, path: DataPathKind, via?: string }> {
    const conn = await this.#request(route, { channel }, `channel ${channel}`, signal)
    await conn.answered
    // A channel keeps its TLS connection to itself: never framed.
    return { ...conn, socket: conn.socket as TLSSocket }
  }

  /** Punched UDP paths to take before relays (src/nat's DirectPaths). */
  usePunchedPaths (punched: PunchedPaths): void {
    this.#punched = punched
  }

  /** An inbound stream on a punched path: a resumable session, then served as a connection accepted on this data path's port. */
  serveStream (raw: Duplex): void {
    if (this.#stopped) { raw.destroy(); return }
    raw.on('error', () => {})
    this.#sockets.add(raw)
    raw.once('close', () => this.#sockets.delete(raw))
    this.#sessions.accept(raw, this.#admission.timeoutMs).then(session => {
      session.on('error', () => {})
      this.#serveTls(session)
    }, () => { this.#admission.reject('unknown_protocol', raw) })
  }

  /** Serves `channel` on this node: `handler` gets each connection a peer opened for it, after its `ok`. */
  handleChannel (channel: string, handler: (peer: string, socket: TLSSocket) => void): void {
    this.#channels.set(channel, handler)
  }

  /**
   * Sends `request` on a connection to the peer; `answered` settles with the peer's answer. A
   * proxied connection to a peer that reads frames is framed, and its TLS connection goes back
   * into the pool when it ends cleanly (frames.ts).
   */
  async #request (route: PeerRoute, request: { ip: string, port: number } | { channel: string }, what: string, signal: AbortSignal | undefined): Promise<{ socket: Duplex, path: DataPathKind, via?: string, answered: Promise<void> }> {
    let conn = this.#pool.take(route.nodeName)
    this.#metrics.pool.inc({ result: conn === undefined ? 'miss' : 'hit' })
    if (conn === undefined) {
      // A bounded number of handshakes at once, newest first (see Limiter): under overload every
      // connection sharing the CPU would finish after its client gave up.
      const release = await this.#connecting.acquire(signal)
      try {
        conn = await this.#connect(route, signal)
      } finally {
        release()
      }
    }
    const { socket, path, via } = conn
    const framed = route.frames === true && 'ip' in request
    socket.write(jsonLine(framed ? { ...request, frames: 1 } : request))
    if (framed) this.#pool.lend(route.nodeName, socket)
    const stream = framed ? new FramedStream(socket, () => { this.#reuse(route, { socket, path, via, at: Date.now() }) }) : socket
    const answered = readLine(socket, CONTROL_TIMEOUT_MS).then(answer => {
      // An agent replaced by an older one since its route was learned: what was sent framed is lost to it.
      if (framed && answer === 'ok') throw new Error(`${route.nodeName} answered without frames (an older agent?)`)
      if (answer !== (framed ? 'ok frames' : 'ok')) throw new EndpointRefusedError(route.nodeName, what, answer.replace(/^err /, ''))
      if (stream instanceof FramedStream) stream.startReading()
      this.#metrics.connections.inc({ path, result: 'ok' })
      this.#notePath(route.nodeName, path, via)
      // Top the pool up for the next connection once this one's first exchange is under way: a
      // handshake started now would hold both agents' event loops just when its bytes are due
      // (dial + first reply took three times as long, DataPath to DataPath in one process).
      setTimeout(() => { this.#refill(route) }, REFILL_DELAY_MS).unref()
    }).catch((err: Error) => {
      stream.destroy()
      socket.destroy()
      this.#metrics.connections.inc({ path, result: err instanceof EndpointRefusedError ? 'refused' : 'failed' })
      throw err
    })
    return { socket: stream, path, via, answered }
  }

  /** A framed connection that ended cleanly: its TLS connection carries the peer's next one. */
  #reuse (route: PeerRoute, conn: Pooled): void {
    if (this.#stopped) { conn.socket.destroy(); return }
    if (conn.path === 'relay') {
      // A relayed connection comes back only while no better path is known: the next connections
      // find a punched or direct path as they would without reuse (#connect, #probeDirect).
      if (this.#punched?.has(route.nodeName) === true) { conn.socket.destroy(); return }
      this.#punched?.want(route.nodeName)
      const failedAt = this.#directFailedAt.get(route.nodeName)
      if (route.direct.length > 0 && failedAt !== undefined && Date.now() - failedAt > (this.#init.directRetryMs ?? 30_000)) this.#probeDirect(route)
    }
    this.#metrics.reused.inc()
    this.#pool.add(route.nodeName, conn)
  }

  /** Forgets what this node knew of a peer's data path (it failed, or the peer has none now): its path, pool and direct failures. */
  forgetPeer (nodeName: string): void {
    this.#peers.delete(nodeName)
    this.#directFailedAt.delete(nodeName)
    this.#pool.forget(nodeName)
  }

  #notePath (nodeName: string, path: DataPathKind, via?: string): void {
    const prev = this.#peers.get(nodeName)
    if (prev?.path === path && prev.via === via) return
    this.#peers.set(nodeName, { nodeName, path, via, since: Date.now() })
  }

  #newPool (): ConnectionPool {
    // One made over a punched path that has been dropped since would have to find that out first;
    // a relayed one is no use once a punched path spares the relay (reused ones stay pooled for long).
    const usable = (nodeName: string, p: Pooled): boolean => p.path === 'punched' ? this.#punched?.has(nodeName) === true : p.path !== 'relay' || this.#punched?.has(nodeName) !== true
    return new ConnectionPool({ size: this.#init.poolSize ?? 2, usable })
  }

  #refill (route: PeerRoute): void {
    if (this.#stopped) return
    // Handshakes for clients come first; the pool fills when there is room.
    if (this.#connecting.waiting > 0) return
    const missing = this.#pool.missing(route.nodeName)
    if (missing > 0) this.#pool.fill(route.nodeName, missing, async () => await this.#connect(route))
  }

  /**
   * A handshaken TLS connection to the peer. Direct first; when it has not
   * answered within `relayHeadStartMs` (a peer behind NAT advertises
   * addresses nobody else can reach), the relays are tried alongside, and
   * whichever finishes first carries the connection. A direct connection
   * that finishes later goes into the pool, so the next one is direct.
   */
  async #connect (route: PeerRoute, signal?: AbortSignal): Promise<Pooled> {
    // A relay reaches a node parked on it through one of those connections: the node dialled it, so it
    // is a direct path, and the only one into a node behind NAT.
    if (this.#init.isRelay) {
      const parked = await this.#relay.take(route.nodeName, () => signal?.aborted === true)
      if (parked !== undefined) {
        try {
          const socket = await untilAborted(parked, signal, async () => await this.#tlsClient(parked, route.nodeName))
          return { socket, path: 'direct', at: Date.now() }
        } catch (err) {
          // A parked connection that died unnoticed: the node's addresses are tried as for any node.
          parked.destroy()
          if (signal?.aborted === true) throw err
        }
      }
    }
    const relays = route.relays.filter(r => r.nodeName !== this.#init.nodeName)
    if (this.#punched?.has(route.nodeName) === true) {
      // A punched path is proven; when it stopped answering, its link is dropped and the relays carry on.
      const punched = await this.#viaPunched(route, signal).catch((err: Error) => {
        if (signal?.aborted === true) throw err
        this.#log.debug('punched path failed; relays take over', { peer: route.nodeName, err: err.message })
        return undefined
      })
      if (punched !== undefined) return punched
    }
    if (route.direct.length === 0) return await this.#viaRelays(route, relays, [], signal)
    const direct = (): Promise<Pooled> => this.#direct(route, signal).then(r => { if ('error' in r) throw new Error(r.error); return r })
    if (relays.length === 0) return await direct()
    const failedAt = this.#directFailedAt.get(route.nodeName)
    if (failedAt !== undefined) {
      // Direct failed lately: this connection takes the relays at once, and one probe in the
      // background finds out when direct works again (its connection goes into the pool), so no
      // connection waits out the head start on a path known to be dead.
      if (Date.now() - failedAt > (this.#init.directRetryMs ?? 30_000)) this.#probeDirect(route)
      return await this.#viaRelays(route, relays, [], signal).catch(async (err: Error) => await direct().catch((d: Error) => { throw new Error(`${err.message}; ${d.message}`) }))
    }
    const racing = this.#direct(route, signal)
    const headStart = new Promise<undefined>(resolve => setTimeout(() => { resolve(undefined) }, this.#init.relayHeadStartMs ?? 250).unref())
    const early = await Promise.race([racing, headStart])
    if (early !== undefined && !('error' in early)) return early
    if (early !== undefined) return await this.#viaRelays(route, relays, [early.error], signal)
    // Direct is slow: race it against the relays; a late direct winner is pooled.
    const relayed = this.#viaRelays(route, relays, [], signal)
    const first = await Promise.race([racing.then(r => 'error' in r ? relayed : r), relayed.catch(async (err: Error) => {
      const r = await racing
      if ('error' in r) throw new Error(`${r.error}; ${err.message}`)
      return r
    })])
    if (first.path === 'relay') {
      racing.then(r => { if (!('error' in r)) this.#pool.add(route.nodeName, r) }, () => {})
    } else {
      relayed.then(r => { this.#pool.add(route.nodeName, r) }, () => {})
    }
    return first
  }

  /** One direct attempt per peer at a time, off the connection's path; a success is pooled. */
  #probeDirect (route: PeerRoute): void {
    if (this.#probing.has(route.nodeName)) return
    this.#probing.add(route.nodeName)
    this.#direct(route).then(r => { if (!('error' in r)) this.#pool.add(route.nodeName, r) }, () => {})
      .finally(() => { this.#probing.delete(route.nodeName) })
  }

  /** Direct to each advertised address in turn; failure is remembered so later connections skip it for a while. */
  async #direct (route: PeerRoute, signal?: AbortSignal): Promise<Pooled | { error: string }> {
    const errors: string[] = []
    for (const a of route.direct) {
      try {
        const raw = await connectWithin({ host: a.host, port: a.port, noDelay: true, allowHalfOpen: true }, this.#init.connectTimeoutMs ?? 1000, signal)
        const socket = await untilAborted(raw, signal, async () => await this.#tlsClient(raw, route.nodeName))
        this.#directFailedAt.delete(route.nodeName)
        return { socket, path: 'direct', at: Date.now() }
      } catch (err) {
        errors.push(`direct ${a.host}:${a.port}: ${(err as Error).message}`)
      }
    }
    this.#directFailedAt.set(route.nodeName, Date.now())
    return { error: errors.join('; ') }
  }

  /**
   * A connection over the peer's punched path, as a resumable session: when
   * the path dies under it, the session carries on through a relay (the peer
   * finds it by its id) and nothing sent is lost.
   */
  async #viaPunched (route: PeerRoute, signal?: AbortSignal): Promise<Pooled> {
    const punched = this.#punched as PunchedPaths
    const raw = await punched.open(route.nodeName, signal)
    const relays = route.relays.filter(r => r.nodeName !== this.#init.nodeName)
    const session = this.#sessions.open(route.nodeName, raw, async (reconnectSignal) => {
      // The path that died is no use to the next connections either.
      punched.lost(route.nodeName)
      const errors: string[] = []
      for (const r of relays) {
        try {
          return await this.#join(r.address, route.nodeName, reconnectSignal)
        } catch (err) {
          errors.push(`relay ${r.nodeName}: ${(err as Error).message}`)
        }
      }
      throw new Error(errors.join('; ') || 'no relay known')
    })
    session.on('error', () => {})
    const socket = await untilAborted(session, signal, async () => await this.#tlsClient(session, route.nodeName))
    return { socket, path: 'punched', at: Date.now() }
  }

  async #viaRelays (route: PeerRoute, relays: PeerRoute['relays'], errors: string[], signal?: AbortSignal): Promise<Pooled> {
    for (const r of relays) {
      try {
        const raw = await this.#join(r.address, route.nodeName, signal)
        const socket = await untilAborted(raw, signal, async () => await this.#tlsClient(raw, route.nodeName))
        // Relayed: a punched path would spare the relay this peer's bytes (tried in the background).
        this.#punched?.want(route.nodeName)
        return { socket, path: 'relay', via: r.nodeName, at: Date.now() }
      } catch (err) {
        errors.push(`relay ${r.nodeName}: ${(err as Error).message}`)
      }
    }
    throw new Error(errors.length > 0 ? errors.join('; ') : 'no address and no relay known')
  }

  #context (): SecureContext {
    this.#tlsContext ??= tls().createSecureContext({ minVersion: 'TLSv1.3', ciphers: this.#ciphers, ecdhCurve: KEY_EXCHANGE_GROUP })
    return this.#tlsContext
  }

  async #tlsClient (raw: Duplex, server: string): Promise<TLSSocket> {
    const identity = pairIdentity(this.#init.nodeName, server)
    return await tlsHandshake(tls().connect, raw, { context: this.#context(), identity, psk: this.#keys.tls(identity), server })
  }

  /** Asks a relay to splice this connection to one that `target` parked there. */
  async #join (relay: HostPort, target: string, signal?: AbortSignal): Promise<Socket> {
    const raw = await connectWithin({ host: relay.host, port: relay.port, noDelay: true, allowHalfOpen: true }, this.#init.connectTimeoutMs ?? 1000, signal)
    try {
      const answer = await untilAborted(raw, signal, async () => await relayRequest(raw, this.#keys, { op: 'join', node: this.#init.nodeName, target }))
      if (answer !== 'ok') throw new Error(answer.replace(/^err /, ''))
      return raw
    } catch (err) {
      raw.destroy()
      throw err
    }
  }

  /** Where the relays see a connection from local TCP port `localPort` come from (TCP punching; see Parking.reflect). */
  async reflect (localPort: number, signal?: AbortSignal): Promise<Array<{ relay: string, host: string, port: number }>> {
    return await this.#parking.reflect(localPort, this.#init.connectTimeoutMs ?? 1000, signal)
  }

  /** A parked connection a peer joined through a relay: its TLS handshake, or a session of a punched path carrying on. */
  #serveParked (socket: Socket): void {
    peekUntil(socket, b => b.length > 0, this.#admission.timeoutMs, 'first byte').then(async first => {
      if (first[0] !== SESSION_MAGIC[0]) { this.#serveTls(socket); return }
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
      await this.#sessions.resume(socket, this.#admission.timeoutMs)
    }).catch((err: Error) => {
      if (!this.#stopped) this.#log.debug('parked connection ended', { err: err.message })
      socket.destroy()
    })
  }

  // --- server side -----------------------------------------------------------

  /** Connections this node holds on its data path port (accepted, spliced or waiting). */
  openConnections (): number {
    return this.#sockets.size
  }

  #accept (socket: Socket): void {
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    socket.on('error', () => {})
    const authenticated = this.#admission.admit(socket)
    if (authenticated === undefined) return
    peekFirstRecord(socket, this.#admission.timeoutMs).then(first => {
      if (first === 0x16) this.#serveTls(socket, authenticated)
      else if (first === RELAY_MAGIC && this.#init.isRelay) {
        this.#relay.serve(socket, authenticated).catch((err: Error) => {
          this.#log.debug('relay request failed', { err: err.message })
          this.#admission.reject('handshake_failed', socket)
        })
      } else this.#admission.reject('unknown_protocol', socket)
    }, () => { this.#admission.reject(socket.readableEnded ? 'eof_before_handshake' : 'handshake_timeout', socket) })
  }

  /** A TLS server on `raw`; `authenticated` once the handshake proved the PSK. */
  #serveTls (raw: Duplex, authenticated: () => void = () => {}): void {
    this.#sockets.add(raw)
    raw.once('close', () => this.#sockets.delete(raw))
    const me = this.#init.nodeName
    /** The client's node, as the identity its handshake proved names it. */
    let peer = ''
    const socket = new (tls().TLSSocket)(raw, {
      isServer: true,
      secureContext: this.#context(),
      pskCallback: (_s: TLSSocket, identity: string) => {
        const id = parseIdentity(identity)
        if (id === undefined || id.server !== me) return null
        peer = id.client
        return this.#keys.tls(identity)
      }
    } as ConstructorParameters<typeof import('node:tls').TLSSocket>[1])
    let secure = false
    // A parked connection a relay handed over gets the same deadline as one accepted here.
    const deadline = setTimeout(() => { if (!secure) this.#admission.reject('handshake_timeout', raw) }, this.#admission.timeoutMs)
    socket.once('close', () => clearTimeout(deadline))
    socket.on('error', () => { if (!secure) this.#admission.reject('handshake_failed', raw); else raw.destroy() })
    // A client that sends part of a handshake and leaves must not hold the socket.
    socket.once('end', () => { if (!secure) this.#admission.reject('eof_before_handshake', raw) })
    socket.setTimeout(SERVER_IDLE_MS, () => socket.destroy())
    socket.once('secure', () => {
      secure = true
      clearTimeout(deadline)
      authenticated()
      this.#serveRequest(socket, peer)
    })
  }

  /** The next request on a connection from `peer`: the first after its handshake, or one after a framed connection ended cleanly. */
  #serveRequest (socket: TLSSocket, peer: string): void {
    readLine(socket, SERVER_IDLE_MS).then(async line => {
      socket.setTimeout(0)
      const request = parseTargetRequest(line)
      if (request === undefined) { this.#serveChannel(socket, peer, line); return }
      const served = await serveTarget(request)
      if ('refused' in served) { refuse(socket, `err ${served.refused}\n`); return }
      if (!request.frames) {
        socket.write('ok\n')
        splice(socket, served.socket, { copied: this.#copied })
        socket.resume()
        return
      }
      socket.write('ok frames\n')
      const stream = new FramedStream(socket, () => { this.#serveRequest(socket, peer) })
      splice(stream, served.socket, { copied: this.#copied })
      stream.startReading()
    }).catch(() => socket.destroy())
  }

  /** A channel request (`{"channel":…}`) on a connection whose handshake proved `peer`. */
  #serveChannel (socket: TLSSocket, peer: string, line: string): void {
    const request = parseChannelRequest(line)
    if (request === undefined) throw new Error('bad request')
    const handler = this.#channels.get(request.channel)
    if (handler === undefined) { refuse(socket, `err no channel ${request.channel} on this node\n`); return }
    socket.write('ok\n')
    handler(peer, socket)
  }
}
