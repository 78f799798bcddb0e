/**
 * Userspace listeners, one per intercepted service port: the DNAT rule sends
 * the service port's traffic to `listenIp:port`, and the listener picks an
 * endpoint and copies bytes (TCP) or datagrams (UDP).
 */
import { createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { createSocket } from 'node:dgram'
import type { Socket as UdpSocket, RemoteInfo } from 'node:dgram'
import type { Duplex } from 'node:stream'
import type { Logger } from '../observability/logger.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import type { LoadBalancer, PickContext, ServicePortKey } from '../loadbalancer/index.ts'
import { targetPort } from '../loadbalancer/index.ts'
import type { Endpoint, ServiceMapView } from '../servicemap/types.ts'
import type { DatagramChannel, EndpointDialer } from '../mesh/endpoint-dialer.ts'
import { earlyAnswer } from '../mesh/early.ts'
import { EarlySendFailed, sendEarly } from './early-send.ts'
import { splice } from '../net/splice.ts'
import { peekRequestHead } from './http-peek.ts'
import type { WarnSummary } from '../observability/warn-summary.ts'
import type { ProxyMetrics } from './metrics.ts'

/** What every listener shares. */
export interface ListenerRuntime {
  log: Logger
  /** Sums failed connections up into a rate-limited warn line. */
  failures: WarnSummary
  lb: LoadBalancer
  view: ServiceMapView
  dialer: EndpointDialer
  isDirect: (nodeName: string | undefined) => boolean
  metrics: ProxyMetrics
  /** Endpoints tried per connection. */
  maxAttempts: number
  /** How long to wait for an HTTP request head when a policy needs one. */
  peekTimeoutMs: number
  /** UDP sessions without traffic in either direction are closed after this long. */
  udpIdleTimeoutMs: number
  /** TCP clients waiting for an endpoint now, over all listeners, and the most allowed. */
  pending: { now: number, readonly max: number }
  copied?: CopiedStreams
}

export interface ServiceListener {
  readonly port: number
  listen (preferredPort: number | undefined): Promise<number>
  /** Stops accepting; open connections and sessions continue (drain). */
  close (): Promise<void>
  /** Ends every open connection and session now. */
  destroyAll (): void
}

function endpointsOf (rt: ListenerRuntime, svc: ServicePortKey): readonly Endpoint[] {
  return rt.view.get(svc.service)?.endpoints ?? []
}

function pathOf (rt: ListenerRuntime, ep: Endpoint): 'direct' | 'tunnel' {
  return rt.isDirect(ep.nodeName) ? 'direct' : 'tunnel'
}

async function bindPreferred (preferred: number | undefined, bind: (port: number) => Promise<number>): Promise<number> {
  if (preferred !== undefined && preferred > 0) {
    try { return await bind(preferred) } catch { /* taken: any port will do, the rule follows the listener */ }
  }
  return await bind(0)
}

export class TcpServiceListener implements ServiceListener {
  readonly #rt: ListenerRuntime
  readonly #svc: ServicePortKey
  readonly #listenIp: string
  readonly #label: string
  readonly #conns = new Set<Socket>()
  #server: Server | undefined
  #port = 0

  constructor (rt: ListenerRuntime, svc: ServicePortKey, listenIp: string) {
    this.#rt = rt
    this.#svc = svc
    this.#listenIp = listenIp
    this.#label = svc.service
  }

  get port (): number { return this.#port }

  async listen (preferredPort: number | undefined): Promise<number> {
    const server = createServer({ allowHalfOpen: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 }, c => { this.#accept(c) })
    this.#port = await bindPreferred(preferredPort, async port => await new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: this.#listenIp, port, backlog: 1024 }, () => {
        server.off('error', reject)
        resolve((server.address() as { port: number }).port)
      })
    }))
    server.on('error', err => this.#rt.log.warn('listener error', { service: this.#label, err }))
    this.#server = server
    return this.#port
  }

  async close (): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (server === undefined) return
    // Do not wait for open connections: they drain on their own.
    await new Promise<void>(resolve => { server.close(() => resolve()); setImmediate(resolve) })
  }

  destroyAll (): void {
    for (const c of this.#conns) c.destroy()
    this.#conns.clear()
  }

  #accept (client: Socket): void {
    const { metrics } = this.#rt
    this.#conns.add(client)
    metrics.connections.inc({ service: this.#label, protocol: 'tcp' })
    metrics.active.inc({ service: this.#label, protocol: 'tcp' })
    client.once('close', () => {
      this.#conns.delete(client)
      metrics.active.dec({ service: this.#label, protocol: 'tcp' })
      metrics.bytes.inc({ service: this.#label, direction: 'to_endpoint' }, client.bytesRead)
      metrics.bytes.inc({ service: this.#label, direction: 'to_client' }, client.bytesWritten)
    })
    client.on('error', () => {}) // handled through 'close'; a reset client is routine
    const { pending } = this.#rt
    if (pending.now >= pending.max) {
      this.#shed(client, 'overload')
      return
    }
    pending.now++
    this.#connect(client).catch(err => {
      this.#rt.log.debug('proxy connection failed', { service: this.#label, err })
      client.destroy()
    }).finally(() => { pending.now-- })
  }

  /** Ends a client without an endpoint, counted and summed up into the warn line. */
  #shed (client: Socket, reason: 'no_endpoints' | 'connect_failed' | 'overload' | 'client_left', err?: unknown): void {
    const rt = this.#rt
    rt.metrics.refused.inc({ service: this.#label, reason })
    rt.failures.record(`${this.#label} ${reason === 'connect_failed' ? (err as Error | undefined)?.name ?? 'connect failed' : reason.replace('_', ' ')}`)
    client.resetAndDestroy()
  }

  async #connect (client: Socket): Promise<void> {
    const rt = this.#rt
    const svc = this.#svc
    const ctx: PickContext = { clientIP: client.remoteAddress, clientPort: client.remotePort }
    let first: Buffer | undefined
    let clientEnded = false
    if (rt.lb.needsHttp(svc.service, svc.port)) {
      const peeked = await peekRequestHead(client, rt.peekTimeoutMs)
      if (peeked.head !== undefined) { ctx.header = peeked.head.header; ctx.cookie = peeked.head.cookie }
      first = peeked.bytes.length > 0 ? peeked.bytes : undefined
      clientEnded = peeked.ended
    }
    if (client.destroyed) return
    const endpoints = endpointsOf(rt, svc)
    let upstream: Duplex | undefined
    let tried = 0
    let lastErr: unknown
    /** Bytes went to an agent that broke before answering: no other endpoint may get them. */
    let cannotResend = false
    // A client that left without sending a byte (gave up while queued, under overload) is not dialed for.
    const left = (): boolean => client.destroyed || (client.readableEnded && client.bytesRead === 0)
    if (left()) { this.#shed(client, 'client_left'); return }
    const abort = new AbortController()
    const onClientGone = (): void => { if (left()) abort.abort() }
    client.once('close', onClientGone)
    client.once('end', onClientGone)
    for (const ep of rt.lb.attempts(svc, endpoints, ctx, rt.maxAttempts)) {
      tried++
      const path = pathOf(rt, ep)
      rt.metrics.picks.inc({ service: this.#label, path })
      try {
        upstream = await rt.dialer.dialTcp({ ip: ep.ip, port: targetPort(ep, svc.portName) as number, nodeName: ep.nodeName, service: svc.service }, abort.signal, { early: true })
        const answered = earlyAnswer(upstream)
        if (answered !== undefined) {
          // Through a peer: the client's bytes go with the request; what the agent refused goes to the next endpoint.
          clientEnded = (await sendEarly(client, upstream, answered, first, clientEnded)).clientEnded
          first = undefined
        }
        break
      } catch (err) {
        upstream?.destroy()
        upstream = undefined
        lastErr = err
        if (err instanceof EarlySendFailed) {
          lastErr = err.cause
          first = err.sent.length > 0 ? err.sent : undefined
          clientEnded = err.clientEnded
          // Bytes the agent may have passed on before the connection broke cannot be sent again elsewhere.
          cannotResend = !err.refused && first !== undefined
        }
        rt.metrics.connectErrors.inc({ service: this.#label, path })
        if (abort.signal.aborted || cannotResend) break
      }
    }
    client.off('close', onClientGone)
    client.off('end', onClientGone)
    if (upstream === undefined || left()) {
      upstream?.destroy()
      // Counted even when the client is gone already: under overload that is how clients fail.
      rt.log.debug('no endpoint reachable; resetting the client', { service: this.#label, tried, err: lastErr })
      this.#shed(client, left() ? 'client_left' : tried === 0 ? 'no_endpoints' : 'connect_failed', lastErr)
      return
    }
    splice(client, upstream, { head: first, aEnded: clientEnded, copied: rt.copied })
  }
}

interface UdpSession {
  channel: DatagramChannel | undefined
  /** Datagrams that arrived while the endpoint was being dialed. */
  queue: Buffer[]
  timer: NodeJS.Timeout
}

/** At most this many datagrams wait for a session's dial; more are dropped, as a full socket buffer would. */
const MAX_QUEUED = 64

export class UdpServiceListener implements ServiceListener {
  readonly #rt: ListenerRuntime
  readonly #svc: ServicePortKey
  readonly #listenIp: string
  readonly #label: string
  readonly #sessions = new Map<string, UdpSession>()
  #socket: UdpSocket | undefined
  #port = 0
  #closing = false

  constructor (rt: ListenerRuntime, svc: ServicePortKey, listenIp: string) {
    this.#rt = rt
    this.#svc = svc
    this.#listenIp = listenIp
    this.#label = svc.service
  }

  get port (): number { return this.#port }

  async listen (preferredPort: number | undefined): Promise<number> {
    let socket: UdpSocket | undefined
    this.#port = await bindPreferred(preferredPort, async port => await new Promise<number>((resolve, reject) => {
      socket = createSocket({ type: this.#listenIp.includes(':') ? 'udp6' : 'udp4' })
      const s = socket
      s.once('error', err => { s.close(); reject(err) })
      s.bind({ address: this.#listenIp, port }, () => { s.removeAllListeners('error'); resolve(s.address().port) })
    }))
    const s = socket as UdpSocket
    s.on('error', err => this.#rt.log.warn('udp listener error', { service: this.#label, err }))
    s.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo))
    this.#socket = s
    return this.#port
  }

  async close (): Promise<void> {
    // A UDP listener has no accept queue to stop: sessions live on its socket, so close waits for destroyAll.
    this.#closing = true
  }

  destroyAll (): void {
    for (const [key, s] of this.#sessions) this.#end(key, s)
    this.#socket?.close()
    this.#socket = undefined
  }

  #onMessage (msg: Buffer, rinfo: RemoteInfo): void {
    const key = `${rinfo.address}:${rinfo.port}`
    let session = this.#sessions.get(key)
    if (session === undefined) {
      if (this.#closing) return
      session = this.#open(key, rinfo)
      if (session === undefined) return
    }
    this.#touch(key, session)
    if (session.channel !== undefined) session.channel.send(msg)
    else if (session.queue.length < MAX_QUEUED) session.queue.push(msg)
  }

  #open (key: string, rinfo: RemoteInfo): UdpSession | undefined {
    const rt = this.#rt
    const svc = this.#svc
    const ep = rt.lb.pick(svc, endpointsOf(rt, svc), { clientIP: rinfo.address, clientPort: rinfo.port })
    if (ep === undefined) {
      rt.metrics.refused.inc({ service: this.#label, reason: 'no_endpoints' })
      return undefined
    }
    const path = pathOf(rt, ep)
    rt.metrics.picks.inc({ service: this.#label, path })
    rt.metrics.connections.inc({ service: this.#label, protocol: 'udp' })
    rt.metrics.active.inc({ service: this.#label, protocol: 'udp' })
    const session: UdpSession = { channel: undefined, queue: [], timer: setTimeout(() => {}, 0) }
    this.#sessions.set(key, session)
    rt.dialer.dialUdp({ ip: ep.ip, port: targetPort(ep, svc.portName) as number, nodeName: ep.nodeName, service: svc.service }).then(channel => {
      if (this.#sessions.get(key) !== session) { channel.close(); return }
      session.channel = channel
      channel.onMessage(reply => {
        this.#touch(key, session)
        rt.metrics.bytes.inc({ service: this.#label, direction: 'to_client' }, reply.length)
        this.#socket?.send(reply, rinfo.port, rinfo.address)
      })
      channel.onClose(() => { if (this.#sessions.get(key) === session) this.#end(key, session) })
      for (const m of session.queue) channel.send(m)
      session.queue = []
    }, err => {
      rt.metrics.connectErrors.inc({ service: this.#label, path })
      rt.log.debug('udp endpoint unreachable', { service: this.#label, err })
      rt.failures.record(`${this.#label} udp ${(err as Error | undefined)?.name ?? 'failed'}`)
      if (this.#sessions.get(key) === session) this.#end(key, session)
    })
    return session
  }

  #touch (key: string, session: UdpSession): void {
    clearTimeout(session.timer)
    session.timer = setTimeout(() => this.#end(key, session), this.#rt.udpIdleTimeoutMs)
    session.timer.unref()
  }

  #end (key: string, session: UdpSession): void {
    clearTimeout(session.timer)
    if (this.#sessions.get(key) !== session) return
    this.#sessions.delete(key)
    this.#rt.metrics.active.dec({ service: this.#label, protocol: 'udp' })
    session.channel?.close()
  }
}
