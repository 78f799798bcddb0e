/**
 * A lean list/watch client over node:http(s). We do not use
 * @kubernetes/client-node (70–85 MB RSS) nor fetch (loads undici): the agent
 * must idle under 60 MB. JSON only: the configured contentType (protobuf by
 * default upstream) is accepted but ignored, every server speaks JSON.
 */
import type { Agent, IncomingMessage } from 'node:http'
import { readFileSync } from 'node:fs'
import { setTimeout as delay } from 'node:timers/promises'
import type { FileReader, KubeConnection } from './connection.ts'
import type { KubeList, KubeObject, ResourceType, WatchEvent } from './types.ts'
import {
  KubeForbiddenError, KubeNotFoundError, KubeRequestError, KubeResourceExpiredError, KubeResourceNotFoundError,
  KubeTimeoutError, KubeUnauthorizedError, KubeUnreachableError
} from './errors.ts'
import type { KubeRequestContext } from './errors.ts'
import { EdgeMeshError } from '../errors.ts'

export interface KubeClientOptions {
  /** Deadline of a get or of one list page. @default 30_000 */
  requestTimeoutMs?: number
  /** How long a watch may outlive its server-side timeoutSeconds before we cut it. @default 30_000 */
  watchGraceMs?: number
  /** Token files are re-read this often (projected service account tokens rotate). @default 60_000 */
  tokenRefreshMs?: number
  readFile?: FileReader
  userAgent?: string
}

interface Selection {
  namespace?: string
  labelSelector?: string
  fieldSelector?: string
}

export interface ListOptions extends Selection {
  /** Page size; 0 lists in one response. @default 500 */
  limit?: number
  resourceVersion?: string
  signal?: AbortSignal
  /** Deadline per page. */
  timeoutMs?: number
}

export interface WatchOptions extends Selection {
  resourceVersion?: string
  /** @default true */
  allowWatchBookmarks?: boolean
  /** Server-side duration of the watch; the client cuts it watchGraceMs later. @default 300 */
  timeoutSeconds?: number
  signal?: AbortSignal
}

/** What a write sends. It is retried once on a stale keep-alive socket as reads are: the server never saw it. */
interface RequestBody {
  method: 'PATCH' | 'POST' | 'DELETE'
  contentType: string
  data: string
}

export interface RequestOptions {
  signal?: AbortSignal
  timeoutMs?: number
}

/** An open watch. Iterate once; close() (or abort the signal, or break) releases the connection. */
export interface WatchStream<T> extends AsyncIterable<WatchEvent<T>> {
  close (): void
}

/** `/api/v1/namespaces/ns/services`, `/apis/discovery.k8s.io/v1/endpointslices`. */
export function resourcePath (r: ResourceType, namespace?: string): string {
  const prefix = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`
  const ns = r.namespaced && namespace !== undefined && namespace !== '' ? `/namespaces/${encodeURIComponent(namespace)}` : ''
  return `${prefix}${ns}/${r.resource}`
}

/** One object's path: `/api/v1/nodes/n1`, `/apis/coordination.k8s.io/v1/namespaces/ns/leases/x`. */
export function objectPath (r: ResourceType, namespace: string | undefined, name: string): string {
  return `${resourcePath(r, namespace)}/${encodeURIComponent(name)}`
}

/** Client-side rate limit shared by all requests of a client (client-go's qps/burst). */
export class TokenBucket {
  readonly #qps: number
  readonly #burst: number
  #tokens: number
  #last: number
  readonly #now: () => number

  constructor (qps: number, burst: number, now: () => number = () => performance.now()) {
    this.#qps = qps
    this.#burst = Math.max(1, burst)
    this.#tokens = this.#burst
    this.#now = now
    this.#last = now()
  }

  /** Milliseconds the caller must wait before its request; reserves the token. */
  reserve (): number {
    if (!(this.#qps > 0)) return 0
    const now = this.#now()
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#qps / 1000)
    this.#last = now
    this.#tokens -= 1
    return this.#tokens >= 0 ? 0 : -this.#tokens * 1000 / this.#qps
  }

  /** Gives back a reservation whose request was abandoned. */
  cancel (): void {
    this.#tokens = Math.min(this.#burst, this.#tokens + 1)
  }

  async take (signal?: AbortSignal): Promise<void> {
    const wait = this.reserve()
    if (wait <= 0) return
    try {
      await delay(wait, undefined, { signal })
    } catch (err) {
      this.cancel()
      throw err
    }
  }
}

/**
 * Splits a stream of concatenated or newline-delimited JSON objects, without
 * assuming chunk boundaries fall between objects.
 */
export class JsonObjectSplitter {
  #pending = ''
  #depth = 0
  #inString = false
  #escape = false
  readonly #maxBytes: number

  constructor (maxBytes = 64 * 1024 * 1024) {
    this.#maxBytes = maxBytes
  }

  push (text: string): string[] {
    const out: string[] = []
    let start = 0
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (this.#inString) {
        if (this.#escape) this.#escape = false
        else if (c === 92) this.#escape = true
        else if (c === 34) this.#inString = false
        continue
      }
      if (c === 34) {
        this.#inString = true
      } else if (c === 123 || c === 91) {
        if (this.#depth === 0) start = i
        this.#depth++
      } else if (c === 125 || c === 93) {
        this.#depth--
        if (this.#depth === 0) {
          out.push(this.#pending + text.slice(start, i + 1))
          this.#pending = ''
        }
      }
    }
    if (this.#depth > 0) {
      this.#pending += text.slice(start)
      if (this.#pending.length > this.#maxBytes) throw new Error(`watch event larger than ${this.#maxBytes} bytes`)
    }
    return out
  }
}

interface Status { message?: string, reason?: string, code?: number }

interface Opened {
  res: IncomingMessage
  /** Clears the deadline and the abort wiring. */
  done: () => void
  /** Why the request was cut, once it was. */
  cutReason: () => Error | undefined
}

const ERROR_BODY_LIMIT = 64 * 1024

// Not `import http from 'node:http'`: building the ESM namespace reads http's
// lazy WebSocket getter, which loads undici (+13 MB RSS). https (TLS, ~5 MB)
// is loaded only for https servers; an http metaServer never needs it.
const http = process.getBuiltinModule('node:http')

export class KubeClient {
  readonly connection: KubeConnection
  readonly #agent: Agent
  readonly #limiter: TokenBucket
  readonly #timeoutMs: number
  readonly #watchGraceMs: number
  readonly #tokenRefreshMs: number
  readonly #readFile: FileReader
  readonly #userAgent: string
  #fileToken: string | undefined
  #fileTokenAt = -Infinity

  constructor (connection: KubeConnection, options: KubeClientOptions = {}) {
    this.connection = connection
    this.#timeoutMs = options.requestTimeoutMs ?? 30_000
    this.#watchGraceMs = options.watchGraceMs ?? 30_000
    this.#tokenRefreshMs = options.tokenRefreshMs ?? 60_000
    this.#readFile = options.readFile ?? (p => readFileSync(p))
    this.#userAgent = options.userAgent ?? 'edgemesh-ts'
    this.#limiter = new TokenBucket(connection.qps, connection.burst)
    const common = { keepAlive: true, keepAliveMsecs: 30_000, scheduling: 'lifo' as const }
    const tls = connection.tls
    this.#agent = connection.server.startsWith('https:')
      ? new (process.getBuiltinModule('node:https').Agent)({
        ...common,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        rejectUnauthorized: !tls.insecureSkipTLSVerify,
        servername: tls.serverName
      })
      : new http.Agent(common)
  }

  /** Lists every page and returns them as one list with the last page's resourceVersion. */
  async list<T extends KubeObject> (resource: ResourceType, opts: ListOptions = {}): Promise<KubeList<T>> {
    const items: T[] = []
    let resourceVersion = ''
    for await (const page of this.listPages<T>(resource, opts)) {
      for (const item of page.items) items.push(item)
      resourceVersion = page.metadata.resourceVersion
    }
    return { metadata: { resourceVersion }, items }
  }

  /** Lists page by page (`limit`/`continue`) so callers can narrow items as they arrive. */
  async * listPages<T extends KubeObject> (resource: ResourceType, opts: ListOptions = {}): AsyncGenerator<KubeList<T>> {
    const path = resourcePath(resource, opts.namespace)
    const ctx = this.#ctx('list', path, resource, opts.namespace)
    const limit = opts.limit ?? 500
    let cont: string | undefined
    do {
      const query = new URLSearchParams()
      if (opts.labelSelector !== undefined && opts.labelSelector !== '') query.set('labelSelector', opts.labelSelector)
      if (opts.fieldSelector !== undefined && opts.fieldSelector !== '') query.set('fieldSelector', opts.fieldSelector)
      if (limit > 0) query.set('limit', String(limit))
      if (cont !== undefined) query.set('continue', cont)
      else if (opts.resourceVersion !== undefined) query.set('resourceVersion', opts.resourceVersion)
      const page = await this.#json<KubeList<T>>(path, query, ctx, true, opts)
      if (typeof page?.metadata?.resourceVersion !== 'string') {
        throw new KubeRequestError(ctx, 0, 'list response has no metadata.resourceVersion')
      }
      page.items ??= []
      yield page
      cont = page.metadata.continue !== undefined && page.metadata.continue !== '' ? page.metadata.continue : undefined
    } while (cont !== undefined)
  }

  /**
   * Opens a watch. Resolves once the server accepted it (so 403/404/410 reject
   * here with typed errors); a 410 later in the stream throws
   * KubeResourceExpiredError from the iteration. The iteration ends normally
   * when the server closes the watch (timeoutSeconds).
   */
  async watch<T extends KubeObject> (resource: ResourceType, opts: WatchOptions = {}): Promise<WatchStream<T>> {
    const path = resourcePath(resource, opts.namespace)
    const ctx = this.#ctx('watch', path, resource, opts.namespace)
    const timeoutSeconds = opts.timeoutSeconds ?? 300
    const query = new URLSearchParams({ watch: 'true' })
    if (opts.labelSelector !== undefined && opts.labelSelector !== '') query.set('labelSelector', opts.labelSelector)
    if (opts.fieldSelector !== undefined && opts.fieldSelector !== '') query.set('fieldSelector', opts.fieldSelector)
    if (opts.resourceVersion !== undefined) query.set('resourceVersion', opts.resourceVersion)
    if (opts.allowWatchBookmarks ?? true) query.set('allowWatchBookmarks', 'true')
    query.set('timeoutSeconds', String(timeoutSeconds))
    const opened = await this.#open(path, query, ctx, opts.signal, timeoutSeconds * 1000 + this.#watchGraceMs)
    if (opened.res.statusCode !== 200) {
      try {
        throw await this.#statusError(opened.res, ctx, true)
      } finally {
        opened.res.destroy()
        opened.done()
      }
    }
    return new Watch<T>(opened, ctx, (err) => this.#streamError(err, ctx, opened, opts.signal))
  }

  /** One GET of a raw path (`/version`, one object). 404 → KubeNotFoundError. */
  async get<T = unknown> (path: string, opts: RequestOptions = {}): Promise<T> {
    const q = path.indexOf('?')
    const query = new URLSearchParams(q >= 0 ? path.slice(q + 1) : '')
    const bare = q >= 0 ? path.slice(0, q) : path
    return await this.#json<T>(bare, query, this.#ctx('get', bare), false, opts)
  }

  /**
   * A JSON merge patch of an object's `status` subresource. With
   * `metadata.resourceVersion` in the patch the server refuses (409) a write
   * over a newer object. Resolves with the patched object.
   */
  async patchStatus<T = unknown> (resource: ResourceType, namespace: string | undefined, name: string, patch: unknown, opts: RequestOptions = {}): Promise<T> {
    const path = `${objectPath(resource, namespace, name)}/status`
    const ctx = this.#ctx('patch', path, resource, namespace)
    const body: RequestBody = { method: 'PATCH', contentType: 'application/merge-patch+json', data: JSON.stringify(patch) }
    return await this.#json<T>(path, new URLSearchParams(), ctx, false, opts, body)
  }

  /** A JSON merge patch of an object; 404 rejects with KubeNotFoundError. Resolves with the patched object. */
  async patch<T = unknown> (resource: ResourceType, namespace: string | undefined, name: string, patch: unknown, opts: RequestOptions = {}): Promise<T> {
    const path = objectPath(resource, namespace, name)
    const body: RequestBody = { method: 'PATCH', contentType: 'application/merge-patch+json', data: JSON.stringify(patch) }
    return await this.#json<T>(path, new URLSearchParams(), this.#ctx('patch', path, resource, namespace), false, opts, body)
  }

  /** Creates an object (POST); 409 (it exists) rejects with KubeRequestError status 409. Resolves with the stored object. */
  async create<T = unknown> (resource: ResourceType, namespace: string | undefined, object: unknown, opts: RequestOptions = {}): Promise<T> {
    const path = resourcePath(resource, namespace)
    const body: RequestBody = { method: 'POST', contentType: 'application/json', data: JSON.stringify(object) }
    return await this.#json<T>(path, new URLSearchParams(), this.#ctx('create', path, resource, namespace), false, opts, body)
  }

  /** Deletes an object; 404 rejects with KubeNotFoundError. */
  async delete (resource: ResourceType, namespace: string | undefined, name: string, opts: RequestOptions = {}): Promise<void> {
    const path = objectPath(resource, namespace, name)
    await this.#json(path, new URLSearchParams(), this.#ctx('delete', path, resource, namespace), false, opts, { method: 'DELETE', contentType: 'application/json', data: '' })
  }

  /** Closes idle keep-alive sockets. Open watches are closed by their owners. */
  close (): void {
    this.#agent.destroy()
  }

  #ctx (verb: KubeRequestContext['verb'], path: string, resource?: ResourceType, namespace?: string): KubeRequestContext {
    return {
      verb,
      path,
      resource: resource?.resource,
      group: resource?.group,
      namespace: resource?.namespaced === true ? namespace : undefined,
      server: this.#serverLabel()
    }
  }

  /** The URL, plus where it came from when the description does not already say. */
  #serverLabel (): string {
    const { server, description } = this.connection
    return description.includes(server) ? description : `${server} (${description})`
  }

  async #json<T> (path: string, query: URLSearchParams, ctx: KubeRequestContext, collection: boolean, opts: RequestOptions, body?: RequestBody): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs
    const opened = await this.#open(path, query, ctx, opts.signal, timeoutMs, body)
    try {
      const code = opened.res.statusCode ?? 0
      // 201 Created and 202 Accepted (a delete in progress) answer writes.
      if (code !== 200 && !(body !== undefined && (code === 201 || code === 202))) throw await this.#statusError(opened.res, ctx, collection)
      let text: string
      try {
        text = await readBody(opened.res, Infinity)
      } catch (err) {
        throw this.#streamError(err, ctx, opened, opts.signal)
      }
      try {
        return JSON.parse(text) as T
      } catch (err) {
        throw new KubeRequestError(ctx, 200, `response is not JSON (content-type ${opened.res.headers['content-type'] ?? 'none'})`, undefined, { cause: err })
      }
    } finally {
      opened.done()
    }
  }

  #authorization (): string | undefined {
    const conn = this.connection
    if (conn.tokenFile !== undefined) {
      const now = performance.now()
      if (now - this.#fileTokenAt >= this.#tokenRefreshMs) {
        try {
          this.#fileToken = this.#readFile(conn.tokenFile).toString('utf8').trim()
          this.#fileTokenAt = now
        } catch {
          // Keep the last token; retry reading on the next request.
        }
      }
      if (this.#fileToken !== undefined && this.#fileToken !== '') return `Bearer ${this.#fileToken}`
    }
    if (conn.token !== undefined) return `Bearer ${conn.token}`
    if (conn.basicAuth !== undefined) {
      return `Basic ${Buffer.from(`${conn.basicAuth.username}:${conn.basicAuth.password}`).toString('base64')}`
    }
    return undefined
  }

  async #open (path: string, query: URLSearchParams, ctx: KubeRequestContext, signal: AbortSignal | undefined, timeoutMs: number, body?: RequestBody): Promise<Opened> {
    signal?.throwIfAborted()
    await this.#limiter.take(signal)
    const url = new URL(this.connection.server)
    const qs = query.toString()
    const fullPath = `${url.pathname.replace(/\/+$/, '')}${path}${qs !== '' ? `?${qs}` : ''}`
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#openOnce(url, fullPath, ctx, signal, timeoutMs, body)
      } catch (err) {
        // A keep-alive socket the server closed meanwhile: retry once on a fresh one.
        if (err instanceof StaleSocketError && attempt === 0) continue
        throw err instanceof StaleSocketError ? err.mapped : err
      }
    }
  }

  #openOnce (url: URL, fullPath: string, ctx: KubeRequestContext, signal: AbortSignal | undefined, timeoutMs: number, body?: RequestBody): Promise<Opened> {
    const ac = new AbortController()
    let cut: Error | undefined
    const timer = setTimeout(() => {
      cut = new KubeTimeoutError(ctx, timeoutMs)
      ac.abort(cut)
    }, timeoutMs)
    const onAbort = (): void => {
      cut = signal?.reason instanceof Error ? signal.reason : new Error('aborted')
      ac.abort(cut)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': this.#userAgent }
    const auth = this.#authorization()
    if (auth !== undefined) headers.Authorization = auth
    if (body !== undefined) {
      headers['Content-Type'] = body.contentType
      headers['Content-Length'] = String(Buffer.byteLength(body.data))
    }
    const mod = url.protocol === 'https:' ? process.getBuiltinModule('node:https') : http
    return new Promise<Opened>((resolve, reject) => {
      const req = mod.request({
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port,
        path: fullPath,
        method: body?.method ?? 'GET',
        agent: this.#agent,
        headers,
        signal: ac.signal
      })
      req.on('response', res => {
        if (res.statusCode === 401 && this.connection.tokenFile !== undefined) this.#fileTokenAt = -Infinity
        resolve({ res, done, cutReason: () => cut })
      })
      req.on('error', err => {
        done()
        if (cut !== undefined) {
          reject(cut)
        } else if (req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
          reject(new StaleSocketError(this.#unreachable('cannot reach', err)))
        } else {
          reject(this.#unreachable('cannot reach', err))
        }
      })
      req.end(body?.data)
    })
  }

  #unreachable (what: string, cause: unknown): KubeUnreachableError {
    return new KubeUnreachableError(this.#serverLabel(), what, { cause })
  }

  /** Maps an error raised while reading a response body. */
  #streamError (err: unknown, ctx: KubeRequestContext, opened: Opened, signal?: AbortSignal): Error {
    if (err instanceof EdgeMeshError) return err
    const cut = opened.cutReason()
    if (cut !== undefined) return cut
    if (signal?.aborted === true) return signal.reason instanceof Error ? signal.reason : new Error('aborted')
    return this.#unreachable(ctx.verb === 'watch' ? 'lost the watch connection to' : 'lost the connection to', err)
  }

  async #statusError (res: IncomingMessage, ctx: KubeRequestContext, collection: boolean): Promise<Error> {
    const status = res.statusCode ?? 0
    let text = ''
    try {
      text = await readBody(res, ERROR_BODY_LIMIT)
    } catch {
      // The status code alone still tells what happened.
    }
    let msg = text.trim().slice(0, 500)
    try {
      const s = JSON.parse(text) as Status
      if (typeof s.message === 'string') msg = s.message
    } catch {
      // Not a Status object (e.g. "404 page not found").
    }
    if (msg === '') msg = `HTTP ${status} ${res.statusMessage ?? ''}`.trim()
    const retryAfter = Number(res.headers['retry-after'])
    return statusToError(status, msg, ctx, collection, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined)
  }
}

/** Maps an HTTP status (or a watch ERROR event's code) to a typed error. */
export function statusToError (status: number, message: string, ctx: KubeRequestContext, collection: boolean, retryAfterMs?: number): Error {
  switch (status) {
    case 401: return new KubeUnauthorizedError(ctx, message)
    case 403: return new KubeForbiddenError(ctx, message)
    case 404: return collection ? new KubeResourceNotFoundError(ctx, message) : new KubeNotFoundError(ctx, message)
    case 410: return new KubeResourceExpiredError(ctx, message)
    default: return new KubeRequestError(ctx, status, message, retryAfterMs)
  }
}

class StaleSocketError extends Error {
  readonly mapped: Error
  constructor (mapped: Error) {
    super(mapped.message)
    this.mapped = mapped
  }
}

class Watch<T> implements WatchStream<T> {
  readonly #opened: Opened
  readonly #ctx: KubeRequestContext
  readonly #mapError: (err: unknown) => Error
  #iterated = false

  constructor (opened: Opened, ctx: KubeRequestContext, mapError: (err: unknown) => Error) {
    this.#opened = opened
    this.#ctx = ctx
    this.#mapError = mapError
  }

  close (): void {
    this.#opened.res.destroy()
    this.#opened.done()
  }

  [Symbol.asyncIterator] (): AsyncIterator<WatchEvent<T>> {
    if (this.#iterated) throw new Error('a watch stream can be iterated once')
    this.#iterated = true
    return this.#events()
  }

  async * #events (): AsyncGenerator<WatchEvent<T>> {
    const res = this.#opened.res
    const splitter = new JsonObjectSplitter()
    res.setEncoding('utf8')
    try {
      for await (const chunk of res as AsyncIterable<string>) {
        let texts: string[]
        try {
          texts = splitter.push(chunk)
        } catch (err) {
          throw new KubeRequestError(this.#ctx, 0, 'unusable watch stream', undefined, { cause: err })
        }
        for (const text of texts) {
          let ev: WatchEvent<T>
          try {
            ev = JSON.parse(text) as WatchEvent<T>
          } catch (err) {
            throw new KubeRequestError(this.#ctx, 0, 'watch event is not JSON', undefined, { cause: err })
          }
          if (ev.type === 'ERROR') {
            const s = (ev.object ?? {}) as Status
            throw statusToError(s.code ?? 0, s.message ?? s.reason ?? 'watch error', this.#ctx, true)
          }
          yield ev
        }
      }
    } catch (err) {
      throw this.#mapError(err)
    } finally {
      this.close()
    }
  }
}

async function readBody (res: IncomingMessage, limit: number): Promise<string> {
  res.setEncoding('utf8')
  const parts: string[] = []
  let size = 0
  for await (const chunk of res as AsyncIterable<string>) {
    if (size < limit) parts.push(chunk)
    size += chunk.length
  }
  return parts.join('')
}
