/**
 * Direct paths across NAT. When a peer is reached through a relay, the two
 * agents meet over that relayed connection (the data path's `nat-punch`
 * channel, authenticated by the pair's TLS key), tell each other what NAT
 * they are behind and where they might be reached, and punch (punch.ts). A
 * path proven both ways becomes a link: the data path then opens its
 * connections to that peer as UDX streams over it (one stream per
 * connection, the same TLS as over TCP on top), and the relay carries none
 * of their bytes.
 *
 * Opening a stream takes one datagram each way (`open`, `accept`: each side
 * learns the other's stream id), sent again while unanswered; a link whose
 * peer answers nothing for `deadAfterMs` is dropped, and new connections go
 * through the relays again.
 *
 * Where UDP is blocked at either side, the pair punches TCP instead
 * (tcp-punch.ts): each side's public TCP endpoint comes from the relays
 * (`reflect`), and the one connection that opens carries the streams
 * (tcp-mux.ts).
 */
import { randomBytes, randomInt } from 'node:crypto'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import { readPnetKey } from '../mesh/psk.ts'
import type { NatReport } from './discovery.ts'
import type { NatPeerStatus } from '../observability/status.ts'
import type { Datagrams } from './datagrams.ts'
import type { DirectPathMetrics } from './metrics.ts'
import { punchPlan, tcpPunchPlan, udpBlocked, type PeerNat, type TcpMapping } from './plan.ts'
import { agree, describe, lineReader, parsePeerNat, parseTcp, tcpLine, type LineReader } from './rendezvous.ts'
import { startPunch } from './punch.ts'
import { PortMapper } from './port-mapping.ts'
import { bindKeptPort } from './punch-port.ts'
import { parseIpv4Endpoint } from '../net/ipv4.ts'
import { TcpMux } from './tcp-mux.ts'
import { startTcpPunch } from './tcp-punch.ts'
import { decodePunch, encodePunch, isPunchDatagram, LINK_ID_BYTES, punchKey, type PunchMessage } from './punch-wire.ts'
import { loadUdx, udxDuplex, type Udx, type UdxAddress, type UdxSocket, type UdxStream } from './udx.ts'

/** What the data path offers for the rendezvous, and takes back: streams to serve. */
export interface Rendezvous {
  /** A connection to the agent on `nodeName` for a module's own traffic, by whatever path the data path has (a relay, here). */
  openChannel (nodeName: string, channel: string, signal: AbortSignal): Promise<Duplex | undefined>
  handleChannel (channel: string, handler: (peer: string, socket: Duplex) => void): void
  /** An inbound stream on a link: served as a connection accepted on the data path's port. */
  serve (stream: Duplex): void
  /** Where the relays see a TCP connection from `localPort` come from (for TCP punching; without it, only UDP is punched). */
  reflect?: (localPort: number, signal?: AbortSignal) => Promise<Array<{ relay: string, host: string, port: number }>>
}

export interface DirectPathsInit {
  nodeName: string
  pskFile?: string
  pnetKey?: Uint8Array
  /** UDP port of the node's socket (NAT checks, punching, streams). @default 0 (any) */
  port?: number
  /** With `port` 0: where the port is kept, so a restart binds the same one (`punch-port.ts`). */
  portFile?: string
  host?: string
  /** How long a plain punch may take; birthday probing gets twice as long. @default 5000 */
  punchTimeoutMs?: number
  /** After a failed punch, the pair is tried again after this long (doubling, up to 10 min). @default 60000 */
  retryMs?: number
  /** Keepalive probes on a link. @default 10000 */
  keepaliveMs?: number
  /** A link whose peer answered nothing for this long is dropped. @default 3000 after a stream open went unanswered */
  openTimeoutMs?: number
  /** Ask the router for a port mapping of the UDP socket (NAT-PMP, UPnP) once the NAT check finds one. @default false */
  portMapping?: boolean
}

export const PUNCH_CHANNEL = 'nat-punch'

export type DirectPathStatus = NatPeerStatus

interface Link {
  peer: string
  id: Buffer
  /** The UDP socket of a punched UDP path; a TCP path has its mux instead. */
  socket: UdxSocket | undefined
  tcp: TcpMux | undefined
  remote: UdxAddress
  rttMs: number
  since: number
  lastHeard: number
  keepalive: NodeJS.Timeout
}

const BIRTHDAY_SOCKETS = 256
/** The answer of a node already punching towards the asking one (both asked at once). */
const BUSY = 'punching from this side'
const MAX_STREAMS_PER_LINK = 1024
const OPEN_RESEND_MS = [0, 150, 400]
const MAX_RETRY_MS = 600_000
/** Local TCP ports punching binds: above the lab's and tests' fixed ports, mostly in Linux's ephemeral range (bind with SO_REUSEADDR shares it). */
const TCP_PORTS = [33_000, 60_000] as const
/** A router that mapped no port is asked again after this long. */
const REMAP_MS = 600_000

export class DirectPaths implements Component {
  readonly name = 'direct-paths'
  readonly #log: Logger
  readonly #metrics: DirectPathMetrics
  readonly #rendezvous: Rendezvous
  readonly #nat: () => NatReport | undefined
  readonly #init: DirectPathsInit
  #udx: Udx | undefined
  #socket: UdxSocket | undefined
  #key: Buffer = Buffer.alloc(32)
  #stopped = true
  readonly #links = new Map<string, Link>()
  readonly #status = new Map<string, DirectPathStatus>()
  readonly #retryAt = new Map<string, { at: number, backoff: number }>()
  readonly #punching = new Map<string, AbortController>()
  /** Streams this node opened, waiting for the peer's accept. */
  readonly #opening = new Map<number, { peer: string, resolve: (accepted: number) => void }>()
  /** Streams accepted per link, by the opener's id (an open sent twice is answered twice, with one stream). */
  readonly #accepted = new Map<string, Map<number, UdxStream>>()
  readonly #sockets = new Set<UdxSocket>()
  /** UDX stream ids in use on this node (one id space per UDX instance). */
  readonly #ids = new Set<number>()
  readonly #datagramListeners = new Set<(bytes: Buffer, from: UdxAddress) => void>()
  #mapper: PortMapper | undefined
  #mapTimer: NodeJS.Timeout | undefined
  /** The port mapping asked for right now, and when to ask again after a router gave none. */
  #mapping: Promise<void> | undefined
  #nextMapAt = 0

  constructor (deps: { logger: Logger, metrics: DirectPathMetrics, rendezvous: Rendezvous, nat: () => NatReport | undefined }, init: DirectPathsInit) {
    this.#log = deps.logger
    this.#metrics = deps.metrics
    this.#rendezvous = deps.rendezvous
    this.#nat = deps.nat
    this.#init = init
  }

  async start (): Promise<void> {
    if (!this.#stopped) return
    const { pnetKey, pskFile } = this.#init
    this.#key = punchKey(pnetKey ?? await readPnetKey(pskFile as string))
    this.#udx = await loadUdx()
    const socket = this.#udx.createSocket()
    socket.on('error', (err: Error) => { this.#log.warn('UDP socket error', { err: err.message }) })
    const host = this.#init.host ?? '0.0.0.0'
    const port = this.#init.port ?? 0
    if (port === 0 && this.#init.portFile !== undefined) await bindKeptPort(socket, host, this.#init.portFile, this.#log)
    else socket.bind(port, host)
    this.#socket = socket
    this.#watch(socket)
    this.#rendezvous.handleChannel(PUNCH_CHANNEL, (peer, channel) => { this.#answer(peer, channel) })
    this.#stopped = false
    if (this.#init.portMapping === true) {
      this.#mapper = new PortMapper({ logger: this.#log })
      this.#mapWhenChecked(0)
    }
  }

  /** Asks for a port mapping once the NAT check is in, then again every REMAP_MS while there is none. */
  #mapWhenChecked (ms: number): void {
    this.#mapTimer = setTimeout(() => {
      if (this.#stopped) return
      if (this.#nat() === undefined) { this.#mapWhenChecked(200); return }
      this.mapPort().then(() => { this.#mapWhenChecked(REMAP_MS) }, () => { this.#mapWhenChecked(REMAP_MS) })
    }, ms)
    this.#mapTimer.unref()
  }

  /**
   * A port mapping from the router, when this node is behind a NAT and has
   * none: asked for now unless a router gave none lately. Resolves once the
   * router answered or did not (2 s at most); a punch waits for it, so that
   * even the first one after start uses the mapping.
   */
  async mapPort (): Promise<void> {
    const report = this.#nat()
    const mapper = this.#mapper
    const port = this.#socket?.address().port
    if (this.#stopped || mapper === undefined || report === undefined || port === undefined || mapper.current() !== undefined) return
    // Public: nothing to map; UDP blocked: a mapping would not help.
    if (report.kind !== 'cone' && report.kind !== 'symmetric') return
    if (this.#mapping === undefined && Date.now() >= this.#nextMapAt) {
      this.#mapping = mapper.map(port).then(m => { if (m === undefined) this.#nextMapAt = Date.now() + REMAP_MS }, (err: Error) => {
        this.#log.debug('port mapping failed', { err: err.message })
        this.#nextMapAt = Date.now() + REMAP_MS
      }).finally(() => { this.#mapping = undefined })
    }
    await this.#mapping
  }

  /** The router's port mapped to the socket, at the public address the relays saw. */
  portMapping (): { address: string, protocol: string, since: number } | undefined {
    const at = this.#routerMapping()
    const m = this.#mapper?.current()
    return at === undefined || m === undefined ? undefined : { address: `${at.host}:${at.port}`, protocol: m.protocol, since: m.since }
  }

  #routerMapping (): UdxAddress | undefined {
    const port = this.#mapper?.current()?.port
    const mapped = this.#nat()?.mapped[0]?.address
    const host = mapped === undefined ? undefined : parseIpv4Endpoint(mapped)?.host
    return port === undefined || host === undefined ? undefined : { host, port }
  }

  /** This node's NAT as the rendezvous tells it: the check, and the port mapping if any. */
  #mine (): (NatReport & { routerMapping?: UdxAddress }) | undefined {
    const report = this.#nat()
    const routerMapping = this.#routerMapping()
    return report === undefined || routerMapping === undefined ? report : { ...report, routerMapping }
  }

  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    clearTimeout(this.#mapTimer)
    await this.#mapper?.stop()
    this.#mapper = undefined
    for (const c of this.#punching.values()) c.abort()
    for (const link of this.#links.values()) clearInterval(link.keepalive)
    this.#links.clear()
    for (const s of this.#sockets) for (const stream of s.streams) stream.destroy()
    await Promise.all([...this.#sockets].map(async s => await s.close().catch(() => {})))
    this.#sockets.clear()
    this.#socket = undefined
  }

  /** The node's UDP socket as plain datagrams (the NAT checks ask the relays through it). */
  datagrams (): Datagrams | undefined {
    const socket = this.#socket
    if (socket === undefined) return undefined
    return {
      port: socket.address().port,
      send: (bytes, port, host) => { socket.trySend(bytes, port, host) },
      listen: fn => {
        this.#datagramListeners.add(fn)
        return () => { this.#datagramListeners.delete(fn) }
      }
    }
  }

  /** True when new connections to `nodeName` can take a punched path. */
  has (nodeName: string): boolean {
    return this.#links.has(nodeName)
  }

  status (): DirectPathStatus[] {
    return [...this.#status.values()]
  }

  /**
   * Punches towards `nodeName` in the background when its connections go
   * through a relay, unless a link exists, a punch is under way, or the last
   * one failed lately.
   */
  want (nodeName: string): void {
    if (this.#stopped || this.#links.has(nodeName) || this.#punching.has(nodeName)) return
    const retry = this.#retryAt.get(nodeName)
    if (retry !== undefined && Date.now() < retry.at) return
    const controller = new AbortController()
    this.#punching.set(nodeName, controller)
    this.#initiate(nodeName, controller.signal).catch((err: Error) => {
      if (!controller.signal.aborted) this.#failed(nodeName, err.message)
    }).finally(() => { if (this.#punching.get(nodeName) === controller) this.#punching.delete(nodeName) })
  }

  /** A connection on the path went silent: the path is dropped, and new connections take the relays. */
  lost (nodeName: string): void {
    this.#drop(nodeName, 'a connection on it went silent')
  }

  /** A new stream to `nodeName` over its link; throws when the peer does not answer (the link is dropped). */
  async open (nodeName: string, signal?: AbortSignal): Promise<Duplex> {
    const link = this.#links.get(nodeName)
    const udx = this.#udx
    if (link?.tcp !== undefined) {
      if (link.tcp.closed) { this.#drop(nodeName, 'the TCP connection closed'); throw new Error(`direct path to ${nodeName} closed`) }
      return link.tcp.open()
    }
    if (link?.socket === undefined || udx === undefined) throw new Error(`no direct path to ${nodeName}`)
    const socket = link.socket
    const id = this.#streamId()
    const stream = udx.createStream(id)
    stream.once('close', () => { this.#ids.delete(id) })
    try {
      const accepted = await new Promise<number>((resolve, reject) => {
        const timers = OPEN_RESEND_MS.map(ms => setTimeout(() => {
          this.#control(link, { type: 'open', link: link.id, node: this.#init.nodeName, stream: id })
        }, ms))
        const fail = (err: Error): void => { for (const t of timers) clearTimeout(t); clearTimeout(deadline); signal?.removeEventListener('abort', onAbort); reject(err) }
        const deadline = setTimeout(() => fail(new Error(`direct path to ${nodeName} (${link.remote.host}:${link.remote.port}) did not answer`)), this.#init.openTimeoutMs ?? 1000)
        const onAbort = (): void => fail(new Error('aborted'))
        signal?.addEventListener('abort', onAbort, { once: true })
        this.#opening.set(id, {
          peer: nodeName,
          resolve: accepted => { for (const t of timers) clearTimeout(t); clearTimeout(deadline); signal?.removeEventListener('abort', onAbort); resolve(accepted) }
        })
      })
      stream.connect(socket, accepted, link.remote.port, link.remote.host)
      stream.setKeepalive(this.#init.keepaliveMs ?? 10_000)
      return udxDuplex(stream, link.remote)
    } catch (err) {
      stream.destroy()
      // Dropped only when the peer has gone quiet: under a burst of opens some answers come late
      // while others arrive, and the path is fine.
      const quiet = Date.now() - link.lastHeard >= (this.#init.openTimeoutMs ?? 1000)
      if (!(signal?.aborted ?? false) && quiet) this.#drop(nodeName, (err as Error).message)
      throw err
    } finally {
      this.#opening.delete(id)
    }
  }

  // --- rendezvous --------------------------------------------------------------

  async #initiate (peer: string, signal: AbortSignal): Promise<void> {
    await this.mapPort()
    const mine = this.#mine()
    if (mine === undefined) throw new Error('this node\'s NAT is not known yet')
    this.#setStatus(peer, { path: 'punching' })
    const channel = await this.#rendezvous.openChannel(peer, PUNCH_CHANNEL, signal)
    if (channel === undefined) throw new Error('the peer has no data path (a Go agent?)')
    const link = randomBytes(LINK_ID_BYTES)
    try {
      let tcp = mine.kind === 'udp-blocked' && this.#rendezvous.reflect !== undefined ? await this.#tcpMapping(signal) : undefined
      channel.write(`${JSON.stringify({ link: link.toString('hex'), ...describe(mine), ...(tcp === undefined ? {} : { tcp: tcpLine(tcp) }) })}\n`)
      const lines = lineReader(channel)
      const answer = await lines.next(10_000)
      // The peer punches towards this node itself: its attempt decides.
      if (answer.error === BUSY) return
      if (typeof answer.error === 'string') throw new Error(`${peer}: ${answer.error}`)
      if (signal.aborted) return
      // UDP is blocked at one side: the peer answered with its TCP endpoint.
      if (answer.tcp !== undefined) {
        const theirs = parseTcp(answer.tcp)
        if (tcp === undefined) {
          tcp = await this.#tcpMapping(signal)
          channel.write(`${JSON.stringify({ tcp: tcpLine(tcp) })}\n`)
        }
        await this.#punchTcp(peer, link, tcp, theirs, channel, lines, true)
        return
      }
      await this.#punch(peer, link, mine, parsePeerNat(answer), channel, lines, true)
    } finally {
      channel.destroy()
    }
  }

  #answer (peer: string, channel: Duplex): void {
    const lines = lineReader(channel)
    lines.next(10_000).then(async request => {
      await this.mapPort()
      const mine = this.#mine()
      const link = typeof request.link === 'string' && /^[0-9a-f]{16}$/.test(request.link) ? Buffer.from(request.link, 'hex') : undefined
      if (link === undefined) throw new Error('bad request')
      if (mine === undefined) { channel.end(`${JSON.stringify({ error: 'NAT not known yet' })}\n`); return }
      // Both sides asking at once: the one whose name sorts first punches, the other answers.
      if (this.#punching.has(peer) && this.#init.nodeName < peer) { channel.end(`${JSON.stringify({ error: BUSY })}\n`); return }
      const theirs = parsePeerNat(request)
      const plan = punchPlan(mine, theirs)
      const viaTcp = udpBlocked(plan) && this.#rendezvous.reflect !== undefined
      if ('refuse' in plan && !viaTcp) {
        channel.end(`${JSON.stringify({ error: plan.refuse })}\n`)
        this.#failed(peer, plan.refuse)
        return
      }
      this.#punching.get(peer)?.abort()
      const controller = new AbortController()
      this.#punching.set(peer, controller)
      try {
        if (viaTcp) {
          const tcp = await this.#tcpMapping(controller.signal)
          channel.write(`${JSON.stringify({ ...describe(mine), tcp: tcpLine(tcp) })}\n`)
          const theirsTcp = parseTcp(request.tcp ?? (await lines.next(10_000)).tcp)
          await this.#punchTcp(peer, link, tcp, theirsTcp, channel, lines, false)
        } else {
          channel.write(`${JSON.stringify(describe(mine))}\n`)
          await this.#punch(peer, link, mine, theirs, channel, lines, false)
        }
      } finally {
        if (this.#punching.get(peer) === controller) this.#punching.delete(peer)
        channel.destroy()
      }
    }).catch((err: Error) => {
      this.#failed(peer, err.message)
      channel.destroy()
    })
  }

  async #punch (peer: string, link: Buffer, mine: NatReport & { routerMapping?: UdxAddress }, theirs: PeerNat, channel: Duplex, lines: LineReader, controlling: boolean): Promise<void> {
    const udx = this.#udx
    const socket = this.#socket
    if (udx === undefined || socket === undefined) throw new Error('stopped')
    const plan = punchPlan(mine, theirs)
    if ('refuse' in plan) throw new Error(plan.refuse)
    const birthday = plan.manySockets || plan.sprayHosts.length > 0
    const timeoutMs = (this.#init.punchTimeoutMs ?? 5000) * (birthday ? 2 : 1)
    const attempt = startPunch(udx, {
      link,
      me: this.#init.nodeName,
      peer,
      key: this.#key,
      socket,
      candidates: plan.candidates,
      extraSockets: plan.manySockets ? BIRTHDAY_SOCKETS : 0,
      sprayHosts: plan.sprayHosts
    })
    const started = Date.now()
    let chosen: UdxSocket | undefined
    try {
      const path = await agree(attempt, channel, lines, controlling, timeoutMs, () => `${attempt.probesSent()} probes sent`)
      chosen = path.socket
      if (chosen !== socket) this.#watch(chosen)
      this.#addLink({ peer, id: link, socket: chosen, tcp: undefined, remote: path.remote }, path.rttMs)
      this.#proven(peer, birthday ? 'direct_birthday' : 'direct', `${path.remote.host}:${path.remote.port}`, path.rttMs, started)
    } finally {
      await attempt.finish(chosen)
    }
  }

  /** TCP simultaneous open (UDP blocked at one side); the connection chosen carries the link's streams. */
  async #punchTcp (peer: string, link: Buffer, mine: TcpMapping, theirs: TcpMapping, channel: Duplex, lines: LineReader, controlling: boolean): Promise<void> {
    const plan = tcpPunchPlan(mine, theirs)
    if ('refuse' in plan) throw new Error(plan.refuse)
    const birthday = plan.extraSockets > 0 || plan.sprayHost !== undefined
    const timeoutMs = (this.#init.punchTimeoutMs ?? 5000) * (birthday ? 2 : 1)
    const attempt = startTcpPunch({ key: this.#key, link, me: this.#init.nodeName, peer, controlling, localPort: mine.localPort, ...plan })
    const started = Date.now()
    let chosen: Socket | undefined
    try {
      const path = await agree(attempt, channel, lines, controlling, timeoutMs, () => `${attempt.opened()} TCP connections opened`)
      chosen = path.socket
      const remote = { host: chosen.remoteAddress ?? theirs.public.host, port: chosen.remotePort ?? theirs.public.port }
      const tcp = new TcpMux(chosen, { initiator: controlling, maxStreams: MAX_STREAMS_PER_LINK, onStream: stream => { this.#rendezvous.serve(stream) } })
      const added = this.#addLink({ peer, id: link, socket: undefined, tcp, remote }, path.rttMs)
      tcp.onClose(reason => { if (this.#links.get(peer) === added) this.#drop(peer, reason) })
      chosen.resume()
      this.#proven(peer, birthday ? 'direct_tcp_birthday' : 'direct_tcp', `tcp ${remote.host}:${remote.port}`, path.rttMs, started)
    } finally {
      attempt.finish(chosen)
    }
  }

  /** This node's public TCP endpoint for a new local port, from the relays. */
  async #tcpMapping (signal?: AbortSignal): Promise<TcpMapping> {
    const reflect = this.#rendezvous.reflect
    if (reflect === undefined) throw new Error('no TCP punching here')
    for (let i = 0; i < 3; i++) {
      const localPort = randomInt(TCP_PORTS[0], TCP_PORTS[1])
      const seen = await reflect(localPort, signal)
      const first = seen[0]
      if (first !== undefined) return { localPort, public: { host: first.host, port: first.port }, preserved: seen.every(s => s.port === localPort) }
    }
    throw new Error('no relay told this node its public TCP endpoint')
  }

  #proven (peer: string, result: string, address: string, rttMs: number, started: number): void {
    this.#metrics.punches.inc({ result })
    this.#metrics.punchSeconds.observe((Date.now() - started) / 1000)
    this.#log.info('direct path proven', { peer, address, rttMs, ms: Date.now() - started })
  }

  #failed (peer: string, reason: string): void {
    if (this.#stopped) return
    const prev = this.#retryAt.get(peer)
    const backoff = Math.min(MAX_RETRY_MS, prev === undefined ? this.#init.retryMs ?? 60_000 : prev.backoff * 2)
    this.#retryAt.set(peer, { at: Date.now() + backoff, backoff })
    this.#metrics.punches.inc({ result: 'failed' })
    this.#setStatus(peer, { path: 'relayed', reason })
    this.#log.debug('no direct path; connections stay relayed', { peer, reason, retryInSeconds: backoff / 1000 })
  }

  // --- links -------------------------------------------------------------------

  #addLink (parts: Pick<Link, 'peer' | 'id' | 'socket' | 'tcp' | 'remote'>, rttMs: number): Link {
    const peer = parts.peer
    this.#drop(peer)
    const link: Link = {
      ...parts,
      rttMs,
      since: Date.now(),
      lastHeard: Date.now(),
      keepalive: setInterval(() => { this.#keepalive(link) }, this.#init.keepaliveMs ?? 10_000)
    }
    link.keepalive.unref()
    this.#links.set(peer, link)
    this.#retryAt.delete(peer)
    this.#metrics.links.set(this.#links.size)
    this.#setStatus(peer, { path: 'direct', over: parts.tcp === undefined ? 'udp' : 'tcp', address: `${parts.remote.host}:${parts.remote.port}`, rttMs })
    return link
  }

  #keepalive (link: Link): void {
    // Three keepalives unanswered: the mapping is gone (a router restarted, UDP blocked now).
    if (link.tcp !== undefined) link.lastHeard = link.tcp.lastHeard
    if (Date.now() - link.lastHeard > 3 * (this.#init.keepaliveMs ?? 10_000) + 1000) { this.#drop(link.peer, 'keepalives unanswered'); return }
    if (link.tcp !== undefined) { link.tcp.ping(randomInt(2 ** 32 - 1)); return }
    link.socket?.trySend(encodePunch(this.#key, { type: 'probe', link: link.id, node: this.#init.nodeName, nonce: randomInt(2 ** 32 - 1) }), link.remote.port, link.remote.host)
  }

  #drop (peer: string, reason?: string): void {
    const link = this.#links.get(peer)
    if (link === undefined) return
    clearInterval(link.keepalive)
    this.#links.delete(peer)
    this.#metrics.links.set(this.#links.size)
    // Streams accepted on it live on (their sessions carry on through a relay); new opens on it are refused.
    this.#accepted.delete(link.id.toString('hex'))
    // Its streams end with the connection, and carry on through a relay.
    link.tcp?.close(reason ?? 'replaced')
    if (link.socket !== undefined && link.socket !== this.#socket && link.socket.streams.size === 0) {
      this.#sockets.delete(link.socket)
      link.socket.close().catch(() => {})
    }
    if (reason !== undefined) {
      this.#log.info('direct path dropped; new connections go through the relays', { peer, reason })
      this.#failed(peer, `direct path lost: ${reason}`)
    }
  }

  #watch (socket: UdxSocket): void {
    this.#sockets.add(socket)
    socket.on('message', (bytes, from) => {
      if (!isPunchDatagram(bytes)) {
        if (socket === this.#socket) for (const fn of this.#datagramListeners) fn(bytes, from)
        return
      }
      const m = decodePunch(this.#key, bytes)
      if (m !== undefined) this.#onDatagram(socket, m, from)
    })
  }

  #onDatagram (socket: UdxSocket, m: PunchMessage, from: UdxAddress): void {
    const link = this.#links.get(m.node)
    // Probes of an attempt under way are the attempt's; these are a link's own.
    if (link === undefined || !link.id.equals(m.link) || link.socket !== socket) return
    if (from.host !== link.remote.host || from.port !== link.remote.port) return
    link.lastHeard = Date.now()
    if (m.type === 'probe') {
      socket.trySend(encodePunch(this.#key, { type: 'ack', link: link.id, node: this.#init.nodeName, nonce: m.nonce }), from.port, from.host)
    } else if (m.type === 'accept') {
      const opening = this.#opening.get(m.stream)
      if (opening?.peer === m.node) opening.resolve(m.accepted)
    } else if (m.type === 'open') {
      this.#accept(link, m.stream)
    }
  }

  #accept (link: Link, openerId: number): void {
    const udx = this.#udx
    const socket = link.socket
    if (udx === undefined || socket === undefined) return
    const key = link.id.toString('hex')
    let streams = this.#accepted.get(key)
    if (streams === undefined) { streams = new Map(); this.#accepted.set(key, streams) }
    let stream = streams.get(openerId)
    if (stream === undefined) {
      if (streams.size >= MAX_STREAMS_PER_LINK) { this.#metrics.refused.inc(); return }
      const id = this.#streamId()
      const s = udx.createStream(id)
      stream = s
      streams.set(openerId, s)
      s.once('close', () => { streams.delete(openerId); this.#ids.delete(id) })
      s.connect(socket, openerId, link.remote.port, link.remote.host)
      s.setKeepalive(this.#init.keepaliveMs ?? 10_000)
      this.#rendezvous.serve(udxDuplex(s, link.remote))
    }
    this.#control(link, { type: 'accept', link: link.id, node: this.#init.nodeName, stream: openerId, accepted: stream.id })
  }

  /** A control datagram on a link, queued rather than dropped when a burst fills the socket's buffer. */
  #control (link: Link, m: PunchMessage): void {
    link.socket?.send(encodePunch(this.#key, m), link.remote.port, link.remote.host).catch(() => {})
  }

  #streamId (): number {
    let id = randomInt(1, 2 ** 31)
    while (this.#ids.has(id)) id = randomInt(1, 2 ** 31)
    this.#ids.add(id)
    return id
  }

  #setStatus (peer: string, s: Omit<DirectPathStatus, 'nodeName' | 'since'>): void {
    this.#status.set(peer, { nodeName: peer, ...s, since: Date.now() })
    if (s.path === 'direct' && s.rttMs !== undefined) this.#metrics.rtt.set({ peer }, s.rttMs / 1000)
    else this.#metrics.rtt.remove({ peer })
    const counts: Record<string, number> = { both_symmetric: 0, udp_blocked: 0, punch_failed: 0, path_lost: 0, other: 0 }
    for (const st of this.#status.values()) if (st.path === 'relayed') { const r = relayReason(st.reason ?? ''); counts[r] = (counts[r] ?? 0) + 1 }
    for (const [reason, n] of Object.entries(counts)) this.#metrics.relayed.set({ reason }, n)
  }
}

/** The metric's word for why a peer is relayed. */
function relayReason (reason: string): string {
  if (/both .*symmetric/.test(reason)) return 'both_symmetric'
  if (/UDP is blocked/.test(reason)) return 'udp_blocked'
  if (/direct path lost/.test(reason)) return 'path_lost'
  if (/no probe answered|not answered|did not take the path|named a probe/.test(reason)) return 'punch_failed'
  return 'other'
}
