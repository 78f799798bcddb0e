/**
 * One HTTP request through the gateway: routed on its own (every request of
 * a keep-alive connection is matched again, unlike upstream, which pipes the
 * connection after the first), redirected or forwarded to an endpoint of the
 * chosen destination with the route's rewrites, header edits, timeout and
 * retries. WebSocket (and any other) upgrades are routed the same way and then
 * spliced.
 */
import http from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { PassThrough } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Duplex, Readable } from 'node:stream'
import type { UpstreamResponse } from './h2-pool.ts'
import type { Endpoint } from '../servicemap/types.ts'
import type { PickContext } from '../loadbalancer/index.ts'
import type { Logger } from '../observability/logger.ts'
import { splice } from '../net/splice.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import type { Backends } from './backends.ts'
import type { Cors, Fault, HeaderOps, HttpRoute } from './istio.ts'
import type { HttpRouteMatch, RouteTable } from './route-table.ts'
import { SCHEME_PORTS, stringMatches } from './route-table.ts'
import { serializeHead } from './http1-head.ts'
import type { GatewayMetrics } from './metrics.ts'

/** Body bytes a mirror may fall behind the request by before it is dropped (the request itself never waits for a mirror). */
export const MIRROR_BUFFER_BYTES = 1024 * 1024
/** A mirrored request's deadline when its route has no timeout. */
const MIRROR_TIMEOUT_MS = 15_000

/** `host:port` → `host-shadow:port`, as Envoy marks mirrored requests for their backends. */
export function shadowAuthority (authority: string): string {
  const m = /^(.*?)(:\d+)?$/.exec(authority)
  return `${m?.[1] ?? authority}-shadow${m?.[2] ?? ''}`
}

/** What the route's CORS policy sets on a response (the backend's own are dropped then). */
const CORS_RESPONSE_HEADERS = ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers']

/** Whether this request is among a `percent` (0–100) share. */
function sampled (percent: number): boolean {
  return percent >= 100 || (percent > 0 && Math.random() * 100 < percent)
}

/** Headers that belong to one hop (RFC 9110 §7.6.1) and are not forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization'])

export interface HttpHandlerDeps {
  logger: Logger
  metrics: GatewayMetrics
  backends: Backends
  /** The table in force now; read per request. */
  table: () => RouteTable
  copied?: CopiedStreams | undefined
}

/** Header fields as Node's IncomingMessage or the fast path's parser give them: lower-case names. */
export type HeaderFields = Readonly<Record<string, string | string[] | undefined>>

/** Headers for the next hop: without the hop-by-hop ones and those a Connection header names (RFC 9110 §7.6.1). */
export function forwardable (headers: HeaderFields): Record<string, string | string[]> {
  const connection = headers.connection
  // `keep-alive` and `close` name no header: the usual values need no parsing.
  const named = connection === undefined || connection === 'keep-alive' || connection === 'close'
    ? undefined
    : new Set(String(connection).toLowerCase().split(',').map(s => s.trim()))
  const out: Record<string, string | string[]> = {}
  for (const k in headers) {
    const v = headers[k]
    // `:path`, `:authority`... are HTTP/2's own and are rebuilt for the next hop.
    if (v !== undefined && !HOP_BY_HOP.has(k) && named?.has(k) !== true && k.charCodeAt(0) !== 58) out[k] = v
  }
  return out
}

/** The request's authority: Host (HTTP/1.1) or :authority (HTTP/2). */
function authorityOf (req: IncomingMessage): string {
  return req.headers.host ?? (req.headers[':authority'] as string | undefined) ?? ''
}

/** gRPC needs HTTP/2 to its backend, whatever the route's Service port says. */
function isGrpc (req: IncomingMessage): boolean {
  return req.headers['content-type']?.startsWith('application/grpc') === true
}

/** Whether the client is gone (HTTP/2 responses have no `destroyed` of their own). */
function gone (res: ServerResponse): boolean {
  return res.destroyed || (res as unknown as { stream?: { destroyed: boolean } }).stream?.destroyed === true
}

export function headerReader (headers: HeaderFields): (name: string) => string | undefined {
  return name => {
    const v = headers[name]
    return Array.isArray(v) ? v.join(',') : v
  }
}

export function cookieReader (headers: HeaderFields): (name: string) => string | undefined {
  return name => {
    const cookie = headers.cookie
    for (const part of (Array.isArray(cookie) ? cookie.join(';') : cookie ?? '').split(';')) {
      const eq = part.indexOf('=')
      if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
    }
    return undefined
  }
}

export function applyOps (headers: Record<string, string | string[]>, ops: HeaderOps): void {
  for (const name of ops.remove) Reflect.deleteProperty(headers, name)
  for (const [k, v] of ops.set) headers[k] = v
  for (const [k, v] of ops.add) {
    const cur = headers[k]
    headers[k] = cur === undefined ? v : [...(Array.isArray(cur) ? cur : [cur]), v]
  }
}

/** The path sent upstream: a prefix rewrite replaces the matched prefix, any other rewrite (or `fullPath`) the whole path (query kept). */
export function rewritePath (path: string, match: HttpRouteMatch, rewrite = match.route.rewrite): string {
  const uri = rewrite?.uri
  if (uri === undefined) return path
  if (rewrite?.fullPath !== true && (match.uri?.kind === 'prefix' || match.uri?.kind === 'pathPrefix')) {
    const prefix = match.uri.kind === 'pathPrefix' && match.uri.value === '/' ? '' : match.uri.value
    const rest = path.slice(prefix.length)
    // `/api` → `/` on `/api/x` gives `/x`, not `//x`.
    return uri.endsWith('/') && rest.startsWith('/') ? uri + rest.slice(1) : uri + rest
  }
  const q = path.indexOf('?')
  return q < 0 ? uri : uri + path.slice(q)
}

function redirectLocation (req: IncomingMessage, scheme: 'http' | 'https', route: HttpRoute, match: HttpRouteMatch, listenerPort: number): string {
  const r = route.redirect ?? { code: 301 }
  const authority = authorityOf(req)
  const toScheme = r.scheme ?? scheme
  let host = r.authority ?? authority
  // Gateway API: the hostname replaces the host only; the port is kept unless `port` says otherwise.
  if (r.hostname !== undefined) host = r.hostname + (/:\d+$/.exec(authority)?.[0] ?? '')
  const port = r.port ?? (r.listenerPort === true ? listenerPort : undefined)
  if (port !== undefined) host = SCHEME_PORTS[toScheme] === port ? host.replace(/:\d+$/, '') : `${host.replace(/:\d+$/, '')}:${port}`
  const path = r.uri !== undefined ? rewritePath(req.url ?? '/', match, { uri: r.uri, fullPath: r.fullPath === true }) : req.url ?? '/'
  return `${toScheme}://${host}${path}`
}

/** Request headers for the backend: hop-by-hop dropped, X-Forwarded-* added, the destination's edits and then the route's applied (Envoy's order). */
export function upstreamHeaders (headers: HeaderFields, client: string, scheme: string, route: HttpRoute, destOps?: HeaderOps): Record<string, string | string[]> {
  const out = forwardable(headers)
  // HTTP/2 requests carry :authority, not Host; a request with neither gets the backend's address from the client.
  const authority = (headers.host ?? headers[':authority'] ?? '') as string
  if (out.host === undefined && authority !== '') out.host = authority
  // The one TE value HTTP/2 allows; gRPC backends require it.
  if (headers.te === 'trailers') out.te = 'trailers'
  const xff = headers['x-forwarded-for']
  out['x-forwarded-for'] = xff === undefined ? client : `${Array.isArray(xff) ? xff.join(', ') : xff}, ${client}`
  out['x-forwarded-proto'] = scheme
  // Node's server has answered `100 Continue` to the client already; undici refuses to send Expect on.
  Reflect.deleteProperty(out, 'expect')
  if (route.rewrite?.authority !== undefined) out.host = route.rewrite.authority
  if (destOps !== undefined) applyOps(out, destOps)
  applyOps(out, route.requestHeaders)
  return out
}

function retriable (route: HttpRoute, status: number | undefined, hasBody: boolean): boolean {
  const on = route.retries?.retryOn ?? []
  if (hasBody) return false
  if (status === undefined) return on.includes('reset') || on.includes('5xx') || on.includes('gateway-error')
  if (on.includes('5xx') && status >= 500) return true
  if (on.includes('gateway-error') && (status === 502 || status === 503 || status === 504)) return true
  return on.includes(String(status)) || (on.includes('retriable-status-codes') && status === 503)
}

export class HttpHandler {
  readonly #deps: HttpHandlerDeps

  constructor (deps: HttpHandlerDeps) {
    this.#deps = deps
  }

  #facts (req: IncomingMessage, scheme: 'http' | 'https'): Parameters<RouteTable['matchHttp']>[1] {
    return { authority: authorityOf(req), method: req.method ?? 'GET', path: req.url ?? '/', scheme, header: headerReader(req.headers) }
  }

  #reply (res: ServerResponse, route: string, code: number, body: string, started: number): void {
    this.#deps.metrics.answered(route, code, (performance.now() - started) / 1000)
    if (res.headersSent) { res.destroy(); return }
    res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) + 1 })
    res.end(`${body}\n`)
  }

  /** Serves one request that arrived on `port`. */
  handle (port: number, scheme: 'http' | 'https', req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now()
    const table = this.#deps.table()
    const spec = table.listener(port)
    if (spec?.httpsRedirect === true && scheme === 'http') {
      res.writeHead(301, { location: `https://${authorityOf(req).replace(/:\d+$/, '')}${req.url ?? '/'}`, 'content-length': 0 })
      res.end()
      this.#deps.metrics.answered('none', 301)
      return
    }
    const match = table.matchHttp(port, this.#facts(req, scheme))
    if (match === undefined) { this.#reply(res, 'none', 404, 'no route', started); return }
    const route = match.route
    if (route.cors !== undefined && this.#cors(req, res, route.cors, route.id)) return
    if (route.direct !== undefined) {
      const headers: Record<string, string | string[]> = { 'content-length': String(route.direct.body.length) }
      if (route.direct.body.length > 0) headers['content-type'] = 'text/plain'
      applyOps(headers, route.responseHeaders)
      res.writeHead(route.direct.status, headers)
      res.end(route.direct.body)
      this.#deps.metrics.answered(route.id, route.direct.status, (performance.now() - started) / 1000)
      return
    }
    if (route.redirect !== undefined) {
      res.writeHead(route.redirect.code, { location: redirectLocation(req, scheme, route, match, port), 'content-length': 0 })
      res.end()
      this.#deps.metrics.answered(route.id, route.redirect.code)
      return
    }
    this.#forward(req, res, scheme, match, started).catch((err: unknown) => {
      this.#deps.logger.debug('gateway request failed', { route: route.id, err })
      this.#reply(res, route.id, 502, 'upstream failed', started)
    })
  }

  /**
   * Istio's CORS, as Envoy's filter does it: a preflight from an allowed
   * origin is answered here; any other request from one gets the allow
   * headers on its response. Requests from other origins pass untouched
   * (their preflights go to the backend). True when the request was answered.
   */
  #cors (req: IncomingMessage, res: ServerResponse, cors: Cors, routeId: string): boolean {
    const origin = req.headers.origin
    if (origin === undefined) return false
    const requested = req.headers['access-control-request-method']
    const preflight = req.method === 'OPTIONS' && requested !== undefined
    if (!cors.origins.some(m => (m.kind === 'exact' && m.value === '*') || stringMatches(m, origin))) {
      if (!preflight || !cors.allPreflights) return false
      res.writeHead(200, { 'content-length': '0' })
      res.end()
      this.#deps.metrics.answered(routeId, 200)
      return true
    }
    if (preflight) {
      const h: Record<string, string> = { 'access-control-allow-origin': origin, 'content-length': '0' }
      // `*` (Gateway API) answers with what the preflight asks for: a wildcard is not honoured with credentials.
      if (cors.methods.length > 0) h['access-control-allow-methods'] = cors.methods.includes('*') ? requested : cors.methods.join(',')
      const askedHeaders = req.headers['access-control-request-headers']
      if (cors.headers.includes('*')) { if (askedHeaders !== undefined) h['access-control-allow-headers'] = askedHeaders } else if (cors.headers.length > 0) h['access-control-allow-headers'] = cors.headers.join(',')
      if (cors.maxAgeSeconds !== undefined) h['access-control-max-age'] = String(cors.maxAgeSeconds)
      if (cors.credentials) h['access-control-allow-credentials'] = 'true'
      res.writeHead(200, h)
      res.end()
      this.#deps.metrics.answered(routeId, 200)
      return true
    }
    res.setHeader('access-control-allow-origin', origin)
    if (cors.credentials) res.setHeader('access-control-allow-credentials', 'true')
    if (cors.expose.length > 0) res.setHeader('access-control-expose-headers', cors.expose.join(','))
    return false
  }

  async #forward (req: IncomingMessage, res: ServerResponse, scheme: string, match: HttpRouteMatch, arrived: number): Promise<void> {
    const { route } = match
    const { backends, metrics } = this.#deps
    let started = arrived
    if (route.fault !== undefined) {
      const { delay, abort } = route.fault
      if (delay !== undefined && sampled(delay.percent)) {
        await sleep(delay.ms)
        if (gone(res) || req.destroyed) return
        // As in Envoy, the route's timeout starts after the injected delay.
        started = performance.now()
      }
      if (abort !== undefined && sampled(abort.percent)) { this.#abort(res, route, abort, arrived); return }
    }
    // HTTP/2 bodies need no length: the stream says whether one follows the headers.
    const h2Stream = (req as unknown as { stream?: { endAfterHeaders: boolean } }).stream
    const hasBody = h2Stream !== undefined
      ? !h2Stream.endAfterHeaders
      : req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined
    const ctx: PickContext = { clientIP: req.socket.remoteAddress, clientPort: req.socket.remotePort, header: headerReader(req.headers), cookie: cookieReader(req.headers) }
    const deadline = route.timeoutMs !== undefined ? started + route.timeoutMs : undefined
    const retries = route.retries?.attempts ?? 0
    const path = rewritePath(req.url ?? '/', match)
    const headers = upstreamHeaders(req.headers, req.socket.remoteAddress ?? '', scheme, route)
    const grpc = isGrpc(req)
    const body = route.mirrors === undefined ? (hasBody ? req : null) : this.#mirror(req, res, route, path, headers, hasBody, ctx, grpc)
    let lastWhy = 'no endpoint'
    for (let attempt = 0; attempt <= retries; attempt++) {
      const resolved = backends.choose(route.route)
      if (!resolved.ok) { this.#reply(res, route.id, resolved.status ?? 503, resolved.why, started); return }
      for (const { ep, port } of backends.attempts(resolved, ctx)) {
        if (gone(res) || req.destroyed) return
        const remaining = deadline === undefined ? undefined : deadline - performance.now()
        if (remaining !== undefined && remaining <= 0) { this.#reply(res, route.id, 504, 'upstream request timeout', started); return }
        const perTry = route.retries?.perTryTimeoutMs
        const limit = perTry !== undefined && remaining !== undefined ? Math.min(perTry, remaining) : perTry ?? remaining
        const dest = resolved.dest
        const sent = dest.requestHeaders === undefined ? headers : upstreamHeaders(req.headers, req.socket.remoteAddress ?? '', scheme, route, dest.requestHeaders)
        const outcome = await this.#try(req, res, { ep, port, service: resolved.svc.service, path, headers: sent, responseOps: dest.responseHeaders, limit, route, body, hasBody, canRetry: attempt < retries, started, h2: resolved.h2 || grpc })
        if (outcome === 'done') return
        if (outcome === 'connect') { metrics.connectErrors.inc({ route: route.id }); lastWhy = 'upstream connect error'; continue }
        if (outcome === 'timeout' && deadline !== undefined && performance.now() >= deadline) { this.#reply(res, route.id, 504, 'upstream request timeout', started); return }
        lastWhy = outcome === 'timeout' ? 'upstream request timeout' : 'upstream reset or retriable status'
        break
      }
    }
    this.#reply(res, route.id, lastWhy === 'upstream request timeout' ? 504 : 503, lastWhy, started)
  }

  /** Answers a request Istio's `fault.abort` picked: its HTTP status, or a gRPC status in trailers (as a backend's trailers-only answer reaches clients). */
  #abort (res: ServerResponse, route: HttpRoute, abort: NonNullable<Fault['abort']>, started: number): void {
    if ('httpStatus' in abort) { this.#reply(res, route.id, abort.httpStatus, 'fault filter abort', started); return }
    this.#deps.metrics.answered(route.id, 200, (performance.now() - started) / 1000)
    res.writeHead(200, { 'content-type': 'application/grpc' })
    res.addTrailers({ 'grpc-status': String(abort.grpcStatus), 'grpc-message': 'fault filter abort' })
    res.end()
  }

  /**
   * Sends copies of the request to the route's mirrors (each sampled by its
   * percent) and returns the body the request itself reads. Mirrors read the
   * body as it passes; one that falls more than MIRROR_BUFFER_BYTES behind is
   * dropped. Their answers and failures are only counted.
   */
  #mirror (req: IncomingMessage, res: ServerResponse, route: HttpRoute, path: string, headers: Record<string, string | string[]>, hasBody: boolean, ctx: PickContext, grpc: boolean): Readable | null {
    const { backends, metrics } = this.#deps
    const copies: PassThrough[] = []
    /** Copies dropped for falling behind: counted as that, not as failed. */
    const dropped = new Set<PassThrough>()
    for (const m of route.mirrors ?? []) {
      if (!sampled(m.percent)) continue
      const resolved = backends.choose([m.dest])
      const first = resolved.ok ? backends.attempts(resolved, ctx).next() : undefined
      if (!resolved.ok || first === undefined || first.done === true) { metrics.mirrored(route.id, 'failed'); continue }
      const copy = hasBody ? new PassThrough() : null
      if (copy !== null) copies.push(copy)
      const authority = headers.host
      const mirrorHeaders = typeof authority === 'string' ? { ...headers, host: shadowAuthority(authority) } : headers
      const signal = AbortSignal.timeout(route.timeoutMs ?? MIRROR_TIMEOUT_MS)
      backends.request(first.value.ep, first.value.port, resolved.svc.service, { method: req.method ?? 'GET', path, headers: mirrorHeaders, body: copy, signal, h2: resolved.h2 || grpc })
        .then(up => {
          up.body.on('error', () => {})
          up.body.resume()
          metrics.mirrored(route.id, 'answered')
        }, () => {
          copy?.destroy()
          if (copy === null || !dropped.has(copy)) metrics.mirrored(route.id, 'failed')
        })
    }
    if (!hasBody) return null
    if (copies.length === 0) return req
    const primary = new PassThrough()
    req.on('data', (chunk: Buffer) => {
      for (const c of copies) {
        if (c.destroyed) continue
        if (c.writableLength > MIRROR_BUFFER_BYTES) { dropped.add(c); c.destroy(); metrics.mirrored(route.id, 'dropped'); continue }
        c.write(chunk)
      }
    })
    req.once('end', () => { for (const c of copies) c.end() })
    // A client that leaves mid-body ends neither copy: the backends' requests are aborted, not completed.
    req.once('close', () => {
      if (req.readableEnded) return
      for (const c of copies) c.destroy()
      primary.destroy(new Error('the client left before its request body ended'))
    })
    req.pipe(primary)
    // A backend that answers before reading the whole body stops reading it; the rest still goes to the mirrors.
    const rest = (): void => {
      if (req.readableEnded || req.destroyed) return
      req.unpipe(primary)
      req.resume()
    }
    primary.once('close', rest)
    res.once('finish', rest)
    req.once('end', () => { primary.off('close', rest); res.off('finish', rest) })
    return primary
  }

  /**
   * One request to one endpoint. `connect`: the endpoint was not reached and
   * the body was not read (the next endpoint may be tried); `retry`: a
   * retriable status or reset on a request without a body; `timeout`: the
   * try's time ran out before the response head.
   */
  async #try (req: IncomingMessage, res: ServerResponse, t: { ep: Endpoint, port: number, service: string, path: string, headers: Record<string, string | string[]>, responseOps: HeaderOps | undefined, limit: number | undefined, route: HttpRoute, body: Readable | null, hasBody: boolean, canRetry: boolean, started: number, h2: boolean }): Promise<'done' | 'connect' | 'retry' | 'timeout'> {
    const { metrics, backends } = this.#deps
    // An AbortController costs more than the rest of the request's bookkeeping: made only for a timeout.
    const abort = t.limit === undefined ? undefined : new AbortController()
    let timedOut = false
    const timer = abort === undefined ? undefined : setTimeout(() => { timedOut = true; abort.abort() }, t.limit)
    let up: UpstreamResponse
    try {
      up = await backends.request(t.ep, t.port, t.service, { method: req.method ?? 'GET', path: t.path, headers: t.headers, body: t.body, signal: abort?.signal, h2: t.h2 })
    } catch (err) {
      clearTimeout(timer)
      if (timedOut) return 'timeout'
      if (gone(res)) return 'done'
      const code = (err as { code?: string }).code
      // A failure before the connection carried anything: the body is untouched, another endpoint may take it.
      if (code !== 'UND_ERR_SOCKET' && code !== 'UND_ERR_ABORTED' && t.body?.readableDidRead !== true) return 'connect'
      if (t.canRetry && retriable(t.route, undefined, t.hasBody)) return 'retry'
      this.#reply(res, t.route.id, 502, 'upstream reset', t.started)
      return 'done'
    }
    clearTimeout(timer)
    if (gone(res)) {
      // The client left while the head was on its way: release the connection (destroy emits an error).
      up.body.on('error', () => {})
      up.body.destroy()
      return 'done'
    }
    const status = up.statusCode
    if (t.canRetry && retriable(t.route, status, t.hasBody)) {
      up.body.resume()
      return 'retry'
    }
    const headers = forwardable(up.headers)
    // The route's CORS answer replaces the backend's, as Envoy's does.
    if (res.hasHeader('access-control-allow-origin')) for (const k of CORS_RESPONSE_HEADERS) Reflect.deleteProperty(headers, k)
    if (t.responseOps !== undefined) applyOps(headers, t.responseOps)
    applyOps(headers, t.route.responseHeaders)
    // A gRPC "trailers-only" answer (an error, mostly) carries its status in the headers: sent on as trailers after the (empty) body, where clients read it.
    const lateTrailers: Record<string, string | string[]> = {}
    if (headers['grpc-status'] !== undefined) {
      for (const k of ['grpc-status', 'grpc-message', 'grpc-status-details-bin']) {
        const v = headers[k]
        if (v !== undefined) { lateTrailers[k] = v; Reflect.deleteProperty(headers, k) }
      }
    }
    metrics.answered(t.route.id, status, (performance.now() - t.started) / 1000)
    res.writeHead(status, headers)
    const body = up.body
    body.on('error', () => res.destroy())
    // A client that leaves mid-response releases the upstream connection.
    res.once('close', () => { if (!res.writableFinished) body.destroy() })
    // Trailers (gRPC's status) arrive after the body and go to the client after it.
    body.pipe(res, { end: false })
    body.once('end', () => {
      const trailers = { ...lateTrailers, ...forwardable(up.trailers) }
      if (Object.keys(trailers).length > 0) res.addTrailers(trailers)
      res.end()
    })
    return 'done'
  }

  /** An upgrade request (WebSocket): routed as any request, then the two connections are spliced. */
  upgrade (port: number, scheme: 'http' | 'https', req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const table = this.#deps.table()
    const match = table.matchHttp(port, this.#facts(req, scheme))
    const refuse = (code: number, why: string): void => {
      this.#deps.metrics.answered(match?.route.id ?? 'none', code)
      socket.end(`HTTP/1.1 ${code} ${http.STATUS_CODES[code] ?? ''}\r\ncontent-length: ${why.length}\r\nconnection: close\r\n\r\n${why}`)
    }
    if (match === undefined) { refuse(404, 'no route'); return }
    const route = match.route
    const resolved = this.#deps.backends.choose(route.route)
    const answersItself = route.redirect !== undefined || route.direct !== undefined
    if (answersItself || !resolved.ok) { refuse(answersItself ? 400 : resolved.ok ? 503 : resolved.status ?? 503, resolved.ok ? 'redirect and direct-response routes do not upgrade' : resolved.why); return }
    const headers = upstreamHeaders(req.headers, req.socket.remoteAddress ?? '', scheme, route, resolved.dest.requestHeaders)
    headers.connection = 'Upgrade'
    headers.upgrade = req.headers.upgrade ?? ''
    const requestHead = Buffer.from(serializeHead(`${req.method ?? 'GET'} ${rewritePath(req.url ?? '/', match)} HTTP/1.1`, headers))
    const ctx: PickContext = { clientIP: req.socket.remoteAddress, header: headerReader(req.headers), cookie: cookieReader(req.headers) }
    const connect = async (): Promise<void> => {
      const abort = new AbortController()
      const gone = (): void => abort.abort()
      socket.once('close', gone)
      const up = await this.#deps.backends.connect(resolved, ctx, abort.signal, () => this.#deps.metrics.connectErrors.inc({ route: route.id }))
      socket.off('close', gone)
      if (up === undefined || socket.destroyed) {
        up?.destroy()
        if (!socket.destroyed) refuse(503, 'upstream connect error')
        return
      }
      this.#deps.metrics.answered(route.id, 101)
      splice(socket, up, { head: head.length > 0 ? Buffer.concat([requestHead, head]) : requestHead, copied: this.#deps.copied })
    }
    connect().catch(() => socket.destroy())
  }
}
