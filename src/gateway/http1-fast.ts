/**
 * The gateway's fast path for HTTP/1.1: plain forwards on keep-alive
 * connections, read and written as bytes on the sockets, without Node's
 * http.Server and an HTTP client. Node's HTTP objects cost more than the
 * proxying itself: in bench:gateway a node:http proxy peaked at 0.14–0.37×
 * nginx's requests/s, a byte-level one at 0.7× (2026-12-07).
 *
 * Each request is still routed on its own. The path takes a request only
 * when its head is in the strict subset `http1-head.ts` accepts and its
 * route forwards over HTTP/1.1 with no retries and no timeout. Anything
 * else (redirects, 404s, retries, timeouts, gRPC and HTTP/2 backends,
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
import { ChunkedEnd, parseRequestHead, parseResponseHead } from './http1-head.ts'
import type { RequestHead, ResponseHead } from './http1-head.ts'

/** Bytes of pipelined requests read ahead while one is served; past this the client is paused. */
const READ_AHEAD = 64 * 1024
/** A backend's silence (before its head, or between body bytes) after which the exchange is dropped: undici's own defaults. */
const UPSTREAM_IDLE_MS = 300_000

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

/** Serves the fast path on one port; `closeIdle` closes its connections that wait for a request. */
export class FastHttp1 {
  readonly #deps: FastHttp1Deps
  readonly #port: number
  readonly #scheme: 'http' | 'https'
  readonly #conns = new Set<ClientConnection>()
  /** The port is closing: connections end after the response in flight. */
  #draining = false

  constructor (deps: FastHttp1Deps, port: number, scheme: 'http' | 'https') {
    this.#deps = deps
    this.#port = port
    this.#scheme = scheme
  }

  /** Takes a new client connection; `handOff` gives it to Node's http.Server with its unread bytes. */
  serve (socket: Duplex, handOff: (socket: Duplex) => void): void {
    const conn = new ClientConnection(this.#deps, this.#port, this.#scheme, socket, handOff, () => this.#conns.delete(conn), () => this.#draining)
    this.#conns.add(conn)
    conn.start()
  }

  /** Called as the port closes: idle connections close now, busy ones after their response. */
  closeIdle (): void {
    this.#draining = true
    for (const conn of this.#conns) conn.closeIfIdle()
  }
}

function serializeHead (firstLine: string, headers: Record<string, string | string[]>): string {
  let out = `${firstLine}\r\n`
  for (const k in headers) {
    const v = headers[k] as string | string[]
    // Values come from clients, backends and routes: no line breaks get through.
    if (Array.isArray(v)) for (const one of v) out += `${k}: ${one.replace(/[\r\n]/g, '')}\r\n`
    else out += `${k}: ${v.replace(/[\r\n]/g, '')}\r\n`
  }
  return `${out}\r\n`
}

/** The idle time a backend announces (`Keep-Alive: timeout=N`), less a second for the race with its close. */
function announcedIdleMs (headers: ResponseHead['headers']): number | undefined {
  const m = /timeout=(\d+)/i.exec([headers['keep-alive'] ?? []].flat().join(','))
  return m === null ? undefined : Math.max(0, Number(m[1]) * 1000 - 1000)
}

interface Exchange {
  head: RequestHead
  match: HttpRouteMatch
  resolved: Extract<Resolved, { ok: true }>
  started: number
  /** Request body bytes still to come from the client. */
  bodyLeft: number
}

class ClientConnection {
  readonly #deps: FastHttp1Deps
  readonly #port: number
  readonly #scheme: 'http' | 'https'
  readonly #socket: Duplex
  readonly #handOff: (socket: Duplex) => void
  readonly #forget: () => void
  readonly #draining: () => boolean
  #buf: Buffer = Buffer.alloc(0)
  #exchange: Exchange | undefined
  /** The backend connection of the exchange in flight, once dialed. */
  #upstream: Duplex | undefined
  #timer: NodeJS.Timeout | undefined
  #waitingSince = 0
  #ended = false
  #done = false
  readonly #onData = (chunk: Buffer): void => { this.#read(chunk) }
  readonly #onEnd = (): void => { this.#ended = true; if (this.#exchange === undefined) this.#close() }
  readonly #onClose = (): void => { this.#finish() }
  readonly #onError = (): void => { this.#socket.destroy() }

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
    s.on('data', this.#onData)
    s.on('end', this.#onEnd)
    s.on('close', this.#onClose)
    s.on('error', this.#onError)
    this.#next()
  }

  closeIfIdle (): void {
    if (this.#exchange === undefined && this.#buf.length === 0) this.#close()
  }

  #close (): void {
    this.#finish()
    this.#socket.destroy()
  }

  /** The connection is over (or was handed off): timers and bookkeeping go. */
  #finish (): void {
    if (this.#done) return
    this.#done = true
    clearTimeout(this.#timer)
    this.#upstream?.destroy()
    this.#forget()
  }

  #read (chunk: Buffer): void {
    const ex = this.#exchange
    // Until a backend connection is there, body bytes wait in the buffer with the rest.
    if (ex !== undefined && ex.bodyLeft > 0 && this.#upstream !== undefined) {
      // The request's body goes straight on; what follows it is the next request.
      const n = Math.min(ex.bodyLeft, chunk.length)
      ex.bodyLeft -= n
      const up = this.#upstream
      if (!up.write(chunk.subarray(0, n))) {
        this.#socket.pause()
        up.once('drain', () => this.#socket.resume())
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
    clearTimeout(this.#timer)
    if (this.#buf.length === 0) {
      if (this.#ended || this.#draining()) { this.#close(); return }
      this.#waitingSince = 0
      this.#timer = setTimeout(() => this.#close(), this.#deps.keepAliveTimeoutMs)
      this.#socket.resume()
      return
    }
    this.#waitingSince ||= performance.now()
    const head = parseRequestHead(this.#buf)
    if (head === 'incomplete') {
      const left = this.#deps.headersTimeoutMs - (performance.now() - this.#waitingSince)
      this.#timer = setTimeout(() => this.#close(), Math.max(0, left))
      this.#socket.resume()
      return
    }
    if (head === 'other') { this.#giveAway(); return }
    const started = performance.now()
    const table = this.#deps.table()
    const facts = { authority: head.headers.host ?? '', method: head.method, path: head.target, scheme: this.#scheme, header: headerReader(head.headers) }
    const match = table.listener(this.#port)?.httpsRedirect === true ? undefined : table.matchHttp(this.#port, facts)
    const route = match?.route
    if (match === undefined || route === undefined || route.redirect !== undefined || (route.retries?.attempts ?? 0) > 0 ||
      route.retries?.perTryTimeoutMs !== undefined || route.timeoutMs !== undefined) {
      this.#giveAway()
      return
    }
    const resolved = this.#choose(match)
    if (resolved === 'other') { this.#giveAway(); return }
    this.#buf = this.#buf.subarray(head.size)
    this.#waitingSince = 0
    if (!resolved.ok) {
      this.#replyAndGo(route.id, resolved.status ?? 503, resolved.why, started, head.contentLength > 0)
      return
    }
    this.#deps.metrics.fastPath.inc({ outcome: 'forwarded' })
    const ex: Exchange = { head, match, resolved, started, bodyLeft: head.contentLength }
    this.#exchange = ex
    this.#forward(ex).catch((err: unknown) => {
      this.#deps.logger.debug('gateway request failed', { route: route.id, err })
      this.#socket.destroy()
    })
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
    this.#deps.metrics.fastPath.inc({ outcome: 'handed_over' })
    const s = this.#socket
    s.off('data', this.#onData)
    s.off('end', this.#onEnd)
    s.off('close', this.#onClose)
    s.off('error', this.#onError)
    this.#finish()
    s.pause()
    if (this.#buf.length > 0) s.unshift(this.#buf)
    this.#buf = Buffer.alloc(0)
    this.#handOff(s)
    process.nextTick(() => s.resume())
  }

  /** A short answer of the gateway's own; a request body not read yet means the connection cannot go on. */
  #replyAndGo (routeId: string, code: number, why: string, started: number, unreadBody: boolean): void {
    this.#deps.metrics.answered(routeId, code, (performance.now() - started) / 1000)
    const close = unreadBody || this.#ended || this.#draining()
    this.#socket.write(`HTTP/1.1 ${code} ${STATUS_CODES[code] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(why) + 1}\r\n${close ? 'connection: close\r\n' : ''}\r\n${why}\n`)
    this.#exchange = undefined
    if (close) { this.#finish(); this.#socket.end(); return }
    this.#next()
  }

  async #forward (ex: Exchange): Promise<void> {
    const { backends, metrics } = this.#deps
    const { head, match, resolved } = ex
    const route = match.route
    const client = (this.#socket as Duplex & { remoteAddress?: string }).remoteAddress ?? ''
    const headers = upstreamHeaders(head.headers, client, this.#scheme, route)
    const requestHead = serializeHead(`${head.method} ${rewritePath(head.target, match)} HTTP/1.1`, headers)
    const ctx: PickContext = { clientIP: client, header: headerReader(head.headers), cookie: cookieReader(head.headers) }
    for (const { ep, port } of backends.attempts(resolved, ctx)) {
      let got: { conn: Duplex, reused: boolean }
      try {
        got = await backends.http1Connection(ep, port, resolved.svc.service)
      } catch {
        metrics.connectErrors.inc({ route: route.id })
        continue
      }
      if (this.#done) { got.conn.destroy(); return }
      let outcome = await this.#exchangeOn(ex, got.conn, ep, port, requestHead)
      if (this.#done) return
      // A kept-alive connection the backend closed as it was taken: once more on a new one, when nothing can have been processed twice.
      if (outcome === 'stale' && got.reused && head.contentLength === 0 && !this.#done) {
        try {
          outcome = await this.#exchangeOn(ex, (await backends.http1Connection(ep, port, resolved.svc.service, true)).conn, ep, port, requestHead)
        } catch {
          metrics.connectErrors.inc({ route: route.id })
          continue
        }
        if (this.#done) return
      }
      if (outcome === 'stale') { this.#replyAndGo(route.id, 502, 'upstream reset', ex.started, ex.bodyLeft > 0); return }
      return
    }
    this.#replyAndGo(route.id, 503, 'upstream connect error', ex.started, head.contentLength > 0)
  }

  /**
   * One request and its response on `up`. `stale`: the backend closed or
   * failed before a byte of the response (nothing was answered yet); `done`:
   * the exchange ended, answered or with the client dropped.
   */
  async #exchangeOn (ex: Exchange, up: Duplex, ep: Endpoint, port: number, requestHead: string): Promise<'done' | 'stale'> {
    const { metrics, backends } = this.#deps
    const { head, match } = ex
    const route = match.route
    this.#upstream = up
    return await new Promise(resolve => {
      let ubuf: Buffer = Buffer.alloc(0)
      let res: ResponseHead | undefined
      let left = 0
      let chunked: ChunkedEnd | undefined
      let timer: NodeJS.Timeout | undefined
      const arm = (): void => {
        clearTimeout(timer)
        timer = setTimeout(() => { cleanup(); up.destroy(); if (res === undefined) { this.#replyAndGo(route.id, 504, 'upstream request timeout', ex.started, ex.bodyLeft > 0); resolve('done') } else { this.#socket.destroy(); resolve('done') } }, UPSTREAM_IDLE_MS)
      }
      const cleanup = (): void => {
        clearTimeout(timer)
        up.off('data', onData)
        up.off('end', onEnd)
        up.off('close', onEnd)
        up.off('error', onEnd)
        this.#socket.off('drain', resumeUp)
        this.#upstream = undefined
      }
      let paused = false
      const resumeUp = (): void => { paused = false; up.resume() }
      const send = (bytes: Buffer): void => {
        if (bytes.length > 0 && !this.#socket.write(bytes) && !paused) {
          paused = true
          up.pause()
          this.#socket.once('drain', resumeUp)
        }
      }
      /** The response ended after `used` bytes of the last chunk; the rest, if any, is a protocol error. */
      const ended = (extra: boolean): void => {
        cleanup()
        const reusable = res?.keepAlive === true && !extra && ex.bodyLeft === 0 && res.framing.kind !== 'close'
        if (reusable) backends.http1Release(ep, port, up, announcedIdleMs((res as ResponseHead).headers))
        else up.destroy()
        this.#exchange = undefined
        resolve('done')
        if (res?.framing.kind === 'close' || head.close || ex.bodyLeft > 0 || this.#ended || this.#draining()) { this.#finish(); this.#socket.end(); return }
        this.#socket.resume()
        this.#next()
      }
      const body = (chunk: Buffer): void => {
        const r = res as ResponseHead
        if (r.framing.kind === 'close') { send(chunk); return }
        if (chunked !== undefined) {
          let used: number
          try { used = chunked.feed(chunk) } catch { cleanup(); up.destroy(); this.#socket.destroy(); resolve('done'); return }
          send(chunk.subarray(0, used))
          if (chunked.done) ended(used < chunk.length)
          return
        }
        const n = Math.min(left, chunk.length)
        left -= n
        send(chunk.subarray(0, n))
        if (left === 0) ended(n < chunk.length)
      }
      const onData = (chunk: Buffer): void => {
        arm()
        if (res !== undefined) { body(chunk); return }
        ubuf = ubuf.length === 0 ? chunk : Buffer.concat([ubuf, chunk])
        for (;;) {
          const parsed = parseResponseHead(ubuf, head.method)
          if (parsed === 'incomplete') return
          if (parsed === 'invalid' || parsed.status === 101) {
            cleanup()
            up.destroy()
            this.#replyAndGo(route.id, 502, 'upstream sent an invalid response', ex.started, ex.bodyLeft > 0)
            resolve('done')
            return
          }
          ubuf = ubuf.subarray(parsed.size)
          // Informational answers (103 Early Hints...) are not passed on, as the full handler's client does not.
          if (parsed.status < 200) continue
          res = parsed
          break
        }
        const r = res
        metrics.answered(route.id, r.status, (performance.now() - ex.started) / 1000)
        const out = forwardable(r.headers)
        applyOps(out, route.responseHeaders)
        if (r.framing.kind === 'chunked') {
          Reflect.deleteProperty(out, 'content-length')
          out['transfer-encoding'] = 'chunked'
          chunked = new ChunkedEnd()
        } else if (r.framing.kind === 'length') {
          left = r.framing.length
          if (head.method !== 'HEAD' && r.status !== 204 && r.status !== 304) out['content-length'] = String(left)
        }
        if (r.framing.kind === 'close' || head.close || ex.bodyLeft > 0 || this.#ended || this.#draining()) out.connection = 'close'
        const headBytes = Buffer.from(serializeHead(`HTTP/1.1 ${r.status} ${r.reason}`, out), 'latin1')
        const rest = ubuf
        ubuf = Buffer.alloc(0)
        // A whole small response goes out in one write: each write on loopback costs more than the rest of the request.
        if (r.framing.kind === 'length' && rest.length >= left) {
          send(left === 0 ? headBytes : Buffer.concat([headBytes, rest.subarray(0, left)]))
          const extra = rest.length > left
          left = 0
          ended(extra)
          return
        }
        send(headBytes)
        if (rest.length > 0) body(rest)
      }
      const onEnd = (): void => {
        if (res === undefined) { cleanup(); up.destroy(); resolve('stale'); return }
        if (res.framing.kind === 'close') { ended(false); return }
        // The backend went away inside a framed body: the client cannot be told but by closing.
        cleanup()
        up.destroy()
        this.#socket.destroy()
        resolve('done')
      }
      up.on('data', onData)
      up.once('end', onEnd)
      up.once('close', onEnd)
      up.once('error', onEnd)
      arm()
      // The head and what of the body has arrived; the rest follows in #read.
      const now = Math.min(ex.bodyLeft, this.#buf.length)
      ex.bodyLeft -= now
      up.write(now > 0 ? Buffer.concat([Buffer.from(requestHead, 'latin1'), this.#buf.subarray(0, now)]) : Buffer.from(requestHead, 'latin1'))
      this.#buf = this.#buf.subarray(now)
      up.resume()
      // The client may have been paused while the connection was dialed: the rest of the body is wanted now.
      if (ex.bodyLeft > 0) this.#socket.resume()
    })
  }
}
