/**
 * The gateway's fast path for HTTP/1.1: plain forwards on keep-alive
 * connections, read and written as bytes on the sockets, without Node's
 * http.Server and an HTTP client. In bench:gateway (docs/benchmarks.md,
 * 2026-12-07) the gateway peaks 1.32× above a node:http + undici proxy that
 * routes nothing, and at 0.59× nginx; it peaked at 0.81× of that proxy when
 * every request went through http.Server and undici.
 *
 * Each request is still routed on its own. The path takes a request only
 * when its head is in the strict subset `http1-head.ts` accepts and its
 * route forwards over HTTP/1.1 with no retries, no timeout, no mirrors, no
 * faults and no CORS policy. Anything else (redirects, direct responses,
 * 404s, retries, timeouts, mirrors, faults, CORS, gRPC and HTTP/2 backends,
 * upgrades, chunked request bodies, HTTP/1.0) hands the connection, at that
 * request's first byte, to Node's http.Server and the full handler, which
 * serve it from then on.
 */
import type { Duplex } from 'node:stream'
import { STATUS_CODES } from 'node:http'
import type { Endpoint } from '../servicemap/types.ts'
import type { PickContext } from '../loadbalancer/index.ts'
import type { Logger } from '../observability/logger.ts'
import type { Backends, Resolved } from './backends.ts'
import type { HttpRouteMatch, RouteTable } from './route-table.ts'
import type { GatewayMetrics } from './metrics.ts'
import { applyOps, cookieReader, forwardable, headerReader, rewritePath, upstreamHeaders } from './http-handler.ts'
import { ChunkedEnd, parseRequestHead, parseResponseHead, serializeHead } from './http1-head.ts'
import type { RequestHead, ResponseHead } from './http1-head.ts'
import type { BackendConnection, ConnectionUser } from './http1-pool.ts'

/** Bytes of pipelined requests read ahead while one is served; past this the client is paused. */
const READ_AHEAD = 64 * 1024
/** A backend's silence (before its head, or between body bytes) after which the exchange is dropped: undici's own defaults. */
const UPSTREAM_IDLE_MS = 300_000
const EMPTY = Buffer.alloc(0)

export interface FastHttp1Deps {
  logger: Logger
  metrics: GatewayMetrics
  backends: Backends
  table: () => RouteTable
  /** A request's head must be complete within this from its first byte. */
  headersTimeoutMs: number
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number
}

/**
 * Serves the fast path on one port; `closeIdle` closes its connections that
 * wait for a request. Deadlines are kept by one sweep over the port's
 * connections, as Node's http.Server does (`connectionsCheckingInterval`),
 * not by timers per request: two timers set and cleared per request cost
 * about 6 µs of the 76 a request took (docs/benchmarks.md).
 */
export class FastHttp1 {
  readonly #deps: FastHttp1Deps
  readonly #port: number
  readonly #scheme: 'http' | 'https'
  readonly #conns = new Set<ClientConnection>()
  /** A tenth of the shorter client deadline, between 10 ms and 1 s: deadlines are kept within 10 %. */
  readonly #sweepMs: number
  #sweep: NodeJS.Timeout | undefined
  /** The port is closing: connections end after the response in flight. */
  #draining = false

  constructor (deps: FastHttp1Deps, port: number, scheme: 'http' | 'https') {
    this.#deps = deps
    this.#port = port
    this.#scheme = scheme
    this.#sweepMs = Math.min(1000, Math.max(10, Math.min(deps.headersTimeoutMs, deps.keepAliveTimeoutMs) / 10))
  }

  /** Takes a new client connection; `handOff` gives it to Node's http.Server with its unread bytes. */
  serve (socket: Duplex, handOff: (socket: Duplex) => void): void {
    const conn = new ClientConnection(this.#deps, this.#port, this.#scheme, socket, handOff, () => this.#conns.delete(conn), () => this.#draining)
    this.#conns.add(conn)
    // Runs while the port has connections: nothing is left behind when the gateway stops.
    this.#sweep ??= setInterval(() => {
      if (this.#conns.size === 0) { clearInterval(this.#sweep); this.#sweep = undefined; return }
      const now = performance.now()
      for (const c of this.#conns) c.checkDeadline(now)
    }, this.#sweepMs).unref()
    conn.start()
  }

  /** Called as the port closes: idle connections close now, busy ones after their response. */
  closeIdle (): void {
    this.#draining = true
    for (const conn of this.#conns) conn.closeIfIdle()
  }
}

/** The idle time a backend announces (`Keep-Alive: timeout=N`), less a second for the race with its close. */
function announcedIdleMs (headers: ResponseHead['headers']): number | undefined {
  const k = headers['keep-alive']
  if (k === undefined) return undefined
  const m = /timeout=(\d+)/i.exec(typeof k === 'string' ? k : k.join(','))
  return m === null ? undefined : Math.max(0, Number(m[1]) * 1000 - 1000)
}

interface Exchange {
  head: RequestHead
  match: HttpRouteMatch
  resolved: Extract<Resolved, { ok: true }>
  started: number
  /** Request body bytes still to come from the client. */
  bodyLeft: number
  /** The request head for the backend. */
  requestHead: Buffer
  /** Endpoints in the load balancer's order, and the one being tried. */
  attempts: Iterator<{ ep: Endpoint, port: number }>
  target: { ep: Endpoint, port: number } | undefined
  /** The connection in use came from the pool (it may have been closed by the backend as it was taken). */
  reused: boolean
  /** The response head, once it arrived, and how its body ends. */
  res: ResponseHead | undefined
  left: number
  chunked: ChunkedEnd | undefined
  /** Response bytes before the head was complete. */
  ubuf: Buffer
  lastUpstreamByte: number
}

/**
 * One client connection. It serves one exchange at a time and is itself the
 * user of the backend connection, so a request adds no listeners, closures
 * or promises.
 */
class ClientConnection implements ConnectionUser {
  readonly #deps: FastHttp1Deps
  readonly #port: number
  readonly #scheme: 'http' | 'https'
  readonly #socket: Duplex
  readonly #handOff: (socket: Duplex) => void
  readonly #forget: () => void
  readonly #draining: () => boolean
  #buf: Buffer = Buffer.alloc(0)
  #exchange: Exchange | undefined
  /** The backend connection of the exchange in flight, once there is one. */
  #up: BackendConnection | undefined
  /** When the connection closes if no request (or no more of its head) came: `performance.now()` time. */
  #deadline = Infinity
  #waitingSince = 0
  #clientEnded = false
  #done = false
  /** The client is paused until the backend drains, or the backend until the client drains. */
  #clientPausedForUp = false
  #upPausedForClient = false
  readonly #onData = (chunk: Buffer): void => { this.#read(chunk) }
  readonly #onEnd = (): void => { this.#clientEnded = true; if (this.#exchange === undefined) this.#close() }
  readonly #onClose = (): void => { this.#finish() }
  readonly #onError = (): void => { this.#socket.destroy() }
  readonly #onUpDrain = (): void => { this.#clientPausedForUp = false; this.#socket.resume() }
  readonly #onClientDrain = (): void => { this.#upPausedForClient = false; this.#up?.socket.resume() }
  /** The client socket's listeners, added on start and taken off at a hand-over. */
  readonly #listeners: ReadonlyArray<[string, (chunk: Buffer) => void]> = [
    ['data', this.#onData], ['end', this.#onEnd], ['close', this.#onClose], ['error', this.#onError], ['drain', this.#onClientDrain]
  ]

  constructor (deps: FastHttp1Deps, port: number, scheme: 'http' | 'https', socket: Duplex, handOff: (socket: Duplex) => void, forget: () => void, draining: () => boolean) {
    this.#deps = deps
    this.#draining = draining
    this.#port = port
    this.#scheme = scheme
    this.#socket = socket
    this.#handOff = handOff
    this.#forget = forget
  }

  start (): void {
    const s = this.#socket as Duplex & { setNoDelay?: (on: boolean) => void }
    s.setNoDelay?.(true)
    for (const [event, listener] of this.#listeners) s.on(event, listener)
    this.#next()
  }

  /** Called by the port's sweep: closes an idle or slow client; drops an exchange whose backend is silent too long. */
  checkDeadline (now: number): void {
    const ex = this.#exchange
    if (ex === undefined) {
      if (now >= this.#deadline) this.#close()
      return
    }
    // Dialing has its own deadline; a request body still being read does not count as the backend's silence.
    if (this.#up === undefined || now - ex.lastUpstreamByte < UPSTREAM_IDLE_MS) return
    this.#dropUpstream()
    if (ex.res === undefined) this.#replyAndGo(ex.match.route.id, 504, 'upstream request timeout', ex.started, ex.bodyLeft > 0)
    else this.#socket.destroy()
  }

  closeIfIdle (): void {
    if (this.#exchange === undefined && this.#buf.length === 0) this.#close()
  }

  #close (): void {
    this.#finish()
    this.#socket.destroy()
  }

  /** The connection is over (or was handed off): it leaves the sweep, a backend connection in use is dropped. */
  #finish (): void {
    if (this.#done) return
    this.#done = true
    this.#dropUpstream()
    this.#forget()
  }

  #dropUpstream (): void {
    const up = this.#up
    this.#up = undefined
    if (up === undefined) return
    up.user = undefined
    up.socket.off('drain', this.#onUpDrain)
    this.#clientPausedForUp = false
    up.socket.destroy()
  }

  #read (chunk: Buffer): void {
    const ex = this.#exchange
    // Until a backend connection is there, body bytes wait in the buffer with the rest.
    if (ex !== undefined && ex.bodyLeft > 0 && this.#up !== undefined) {
      // The request's body goes straight on; what follows it is the next request.
      const n = Math.min(ex.bodyLeft, chunk.length)
      ex.bodyLeft -= n
      const up = this.#up.socket
      if (!up.write(chunk.subarray(0, n)) && !this.#clientPausedForUp) {
        this.#clientPausedForUp = true
        this.#socket.pause()
        up.once('drain', this.#onUpDrain)
      }
      chunk = chunk.subarray(n)
      if (chunk.length === 0) return
    }
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk])
    if (this.#exchange === undefined) this.#next()
    else if (this.#buf.length > READ_AHEAD) this.#socket.pause()
  }

  /** Serves the next request in the buffer, or waits for one. */
  #next (): void {
    if (this.#done) return
    if (this.#buf.length === 0) {
      if (this.#clientEnded || this.#draining()) { this.#close(); return }
      this.#waitingSince = 0
      this.#deadline = performance.now() + this.#deps.keepAliveTimeoutMs
      this.#socket.resume()
      return
    }
    const started = performance.now()
    this.#waitingSince ||= started
    const head = parseRequestHead(this.#buf)
    if (head === 'incomplete') {
      this.#deadline = this.#waitingSince + this.#deps.headersTimeoutMs
      this.#socket.resume()
      return
    }
    if (head === 'other') { this.#giveAway(); return }
    const table = this.#deps.table()
    const header = headerReader(head.headers)
    const facts = { authority: head.headers.host ?? '', method: head.method, path: head.target, scheme: this.#scheme, header }
    const match = table.listener(this.#port)?.httpsRedirect === true ? undefined : table.matchHttp(this.#port, facts)
    const route = match?.route
    if (match === undefined || route === undefined || route.redirect !== undefined || route.direct !== undefined || (route.retries?.attempts ?? 0) > 0 ||
      route.retries?.perTryTimeoutMs !== undefined || route.timeoutMs !== undefined || route.mirrors !== undefined || route.fault !== undefined || route.cors !== undefined) {
      this.#giveAway()
      return
    }
    const resolved = this.#choose(match)
    if (resolved === 'other') { this.#giveAway(); return }
    this.#buf = head.size === this.#buf.length ? EMPTY : this.#buf.subarray(head.size)
    this.#waitingSince = 0
    if (!resolved.ok) {
      this.#replyAndGo(route.id, resolved.status ?? 503, resolved.why, started, head.contentLength > 0)
      return
    }
    this.#deps.metrics.fastPath('forwarded')
    const client = (this.#socket as Duplex & { remoteAddress?: string }).remoteAddress ?? ''
    const headers = upstreamHeaders(head.headers, client, this.#scheme, route, resolved.dest.requestHeaders)
    const ctx: PickContext = { clientIP: client, header, cookie: cookieReader(head.headers) }
    this.#exchange = {
      head,
      match,
      resolved,
      started,
      bodyLeft: head.contentLength,
      requestHead: Buffer.from(serializeHead(`${head.method} ${rewritePath(head.target, match)} HTTP/1.1`, headers), 'latin1'),
      attempts: this.#deps.backends.attempts(resolved, ctx),
      target: undefined,
      reused: false,
      res: undefined,
      left: 0,
      chunked: undefined,
      ubuf: EMPTY,
      lastUpstreamByte: started
    }
    this.#tryNext()
  }

  /**
   * The destination, drawn by weight as the full handler draws it; `other`
   * when any of the route's destinations speaks HTTP/2, so the draw is left
   * whole to the handler.
   */
  #choose (match: HttpRouteMatch): Resolved | 'other' {
    const { backends } = this.#deps
    const dests = match.route.route
    if (dests.length === 1) {
      const r = backends.resolve(dests[0] as (typeof dests)[0])
      return r.ok && r.h2 ? 'other' : r
    }
    for (const d of dests) {
      const r = backends.resolve(d)
      if (r.ok && r.h2) return 'other'
    }
    return backends.choose(dests)
  }

  /** Hands the connection to Node's http.Server at this request's first byte. */
  #giveAway (): void {
    this.#deps.metrics.fastPath('handed_over')
    const s = this.#socket
    for (const [event, listener] of this.#listeners) s.off(event, listener)
    this.#finish()
    s.pause()
    if (this.#buf.length > 0) s.unshift(this.#buf)
    this.#buf = EMPTY
    this.#handOff(s)
    process.nextTick(() => s.resume())
  }

  /** A short answer of the gateway's own; a request body not read yet means the connection cannot go on. */
  #replyAndGo (routeId: string, code: number, why: string, started: number, unreadBody: boolean): void {
    this.#deps.metrics.answered(routeId, code, (performance.now() - started) / 1000)
    const close = unreadBody || this.#clientEnded || this.#draining()
    this.#socket.write(`HTTP/1.1 ${code} ${STATUS_CODES[code] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(why) + 1}\r\n${close ? 'connection: close\r\n' : ''}\r\n${why}\n`)
    this.#exchange = undefined
    if (close) { this.#finish(); this.#socket.end(); return }
    this.#next()
  }

  /** The next endpoint in the load balancer's order: an idle connection to it, else a new one. */
  #tryNext (): void {
    const ex = this.#exchange as Exchange
    const { backends, metrics } = this.#deps
    const next = ex.attempts.next()
    if (next.done === true) {
      this.#replyAndGo(ex.match.route.id, 503, 'upstream connect error', ex.started, ex.head.contentLength > 0)
      return
    }
    const { ep, port } = next.value
    ex.target = next.value
    const idle = backends.http1Take(ep, port, ex.resolved.svc.service)
    if (idle !== undefined) { this.#begin(idle, true); return }
    this.#dial(() => { metrics.connectErrors.inc({ route: ex.match.route.id }); this.#tryNext() })
  }

  /** A new connection to the current endpoint; `failed` when it cannot be had. */
  #dial (failed: () => void): void {
    const ex = this.#exchange as Exchange
    const { ep, port } = ex.target as { ep: Endpoint, port: number }
    this.#deps.backends.http1Dial(ep, port, ex.resolved.svc.service).then(c => {
      if (this.#done) { c.socket.destroy(); return }
      this.#begin(c, false)
    }, () => { if (!this.#done) failed() })
  }

  /** Sends the request (and what of its body has arrived) on `up`. */
  #begin (up: BackendConnection, reused: boolean): void {
    const ex = this.#exchange as Exchange
    this.#up = up
    up.user = this
    ex.reused = reused
    ex.res = undefined
    ex.ubuf = EMPTY
    ex.lastUpstreamByte = reused ? ex.started : performance.now()
    const now = Math.min(ex.bodyLeft, this.#buf.length)
    ex.bodyLeft -= now
    up.socket.write(now > 0 ? Buffer.concat([ex.requestHead, this.#buf.subarray(0, now)]) : ex.requestHead)
    if (now > 0) this.#buf = this.#buf.subarray(now)
    // The client may have been paused while the connection was dialed: the rest of the body is wanted now.
    if (ex.bodyLeft > 0) this.#socket.resume()
  }

  #send (bytes: Buffer): void {
    if (bytes.length > 0 && !this.#socket.write(bytes) && !this.#upPausedForClient) {
      this.#upPausedForClient = true
      this.#up?.socket.pause()
    }
  }

  onUpstreamData (chunk: Buffer): void {
    const ex = this.#exchange as Exchange
    const now = performance.now()
    ex.lastUpstreamByte = now
    if (ex.res !== undefined) { this.#body(chunk); return }
    let ubuf = ex.ubuf.length === 0 ? chunk : Buffer.concat([ex.ubuf, chunk])
    let r: ResponseHead
    for (;;) {
      const parsed = parseResponseHead(ubuf, ex.head.method)
      if (parsed === 'incomplete') { ex.ubuf = ubuf; return }
      if (parsed === 'invalid' || parsed.status === 101) {
        this.#dropUpstream()
        this.#replyAndGo(ex.match.route.id, 502, 'upstream sent an invalid response', ex.started, ex.bodyLeft > 0)
        return
      }
      ubuf = ubuf.subarray(parsed.size)
      // Informational answers (103 Early Hints...) are not passed on, as the full handler's client does not.
      if (parsed.status >= 200) { r = parsed; break }
    }
    ex.res = r
    ex.ubuf = EMPTY
    const route = ex.match.route
    this.#deps.metrics.answered(route.id, r.status, (now - ex.started) / 1000)
    const out = forwardable(r.headers)
    const destOps = ex.resolved.dest.responseHeaders
    if (destOps !== undefined) applyOps(out, destOps)
    applyOps(out, route.responseHeaders)
    if (r.framing.kind === 'chunked') {
      Reflect.deleteProperty(out, 'content-length')
      out['transfer-encoding'] = 'chunked'
      ex.chunked = new ChunkedEnd()
    } else if (r.framing.kind === 'length') {
      ex.left = r.framing.length
      if (ex.head.method !== 'HEAD' && r.status !== 204 && r.status !== 304) out['content-length'] = String(ex.left)
    }
    if (this.#closesAfter()) out.connection = 'close'
    const head = serializeHead(`HTTP/1.1 ${r.status} ${r.reason}`, out)
    // A whole small response goes out in one write, made in one buffer: each write on loopback costs more than the rest of the request.
    if (r.framing.kind === 'length' && ubuf.length >= ex.left) {
      const whole = Buffer.allocUnsafe(head.length + ex.left)
      whole.write(head, 0, 'latin1')
      ubuf.copy(whole, head.length, 0, ex.left)
      this.#send(whole)
      const extra = ubuf.length > ex.left
      ex.left = 0
      this.#responseEnded(extra)
      return
    }
    this.#send(Buffer.from(head, 'latin1'))
    if (ubuf.length > 0) this.#body(ubuf)
  }

  /** Whether the client connection closes after this response. */
  #closesAfter (): boolean {
    const ex = this.#exchange as Exchange
    return ex.res?.framing.kind === 'close' || ex.head.close || ex.bodyLeft > 0 || this.#clientEnded || this.#draining()
  }

  #body (chunk: Buffer): void {
    const ex = this.#exchange as Exchange
    if (ex.res?.framing.kind === 'close') { this.#send(chunk); return }
    if (ex.chunked !== undefined) {
      let used: number
      try {
        used = ex.chunked.feed(chunk)
      } catch {
        this.#dropUpstream()
        this.#socket.destroy()
        return
      }
      this.#send(chunk.subarray(0, used))
      if (ex.chunked.done) this.#responseEnded(used < chunk.length)
      return
    }
    const n = Math.min(ex.left, chunk.length)
    ex.left -= n
    this.#send(chunk.subarray(0, n))
    if (ex.left === 0) this.#responseEnded(n < chunk.length)
  }

  onUpstreamGone (): void {
    const ex = this.#exchange
    if (ex === undefined || this.#done) return
    if (ex.res?.framing.kind === 'close') { this.#responseEnded(false); return }
    this.#dropUpstream()
    if (ex.res !== undefined) {
      // The backend went away inside a framed body: the client cannot be told but by closing.
      this.#socket.destroy()
      return
    }
    // A kept-alive connection the backend closed as it was taken: once more on a new one, when nothing can have been processed twice.
    if (ex.reused && ex.head.contentLength === 0) {
      this.#dial(() => { this.#deps.metrics.connectErrors.inc({ route: ex.match.route.id }); this.#tryNext() })
      return
    }
    this.#replyAndGo(ex.match.route.id, 502, 'upstream reset', ex.started, ex.bodyLeft > 0)
  }

  /** The response ended; `extra`: the backend sent more than it framed (a protocol error). */
  #responseEnded (extra: boolean): void {
    const ex = this.#exchange as Exchange
    const up = this.#up as BackendConnection
    this.#up = undefined
    if (this.#upPausedForClient) { this.#upPausedForClient = false; up.socket.resume() }
    up.socket.off('drain', this.#onUpDrain)
    this.#clientPausedForUp = false
    const res = ex.res as ResponseHead
    if (res.keepAlive && !extra && ex.bodyLeft === 0 && res.framing.kind !== 'close') this.#deps.backends.http1Release(up, announcedIdleMs(res.headers))
    else { up.user = undefined; up.socket.destroy() }
    const close = this.#closesAfter()
    this.#exchange = undefined
    if (close) { this.#finish(); this.#socket.end(); return }
    this.#socket.resume()
    this.#next()
  }
}
