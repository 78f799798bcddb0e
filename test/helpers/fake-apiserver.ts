/**
 * A tiny in-memory API server for unit tests of the kube client and informer:
 * list with limit/continue, watch with history replay and bookmarks, and
 * switches to inject 403/404/410 and broken streams. Only what the tests use.
 */
import http from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

interface Obj { metadata: { name: string, namespace?: string, resourceVersion?: string, labels?: Record<string, string> } }
interface Recorded { type: 'ADDED' | 'MODIFIED' | 'DELETED', object: Obj, rv: number }

export interface SeenRequest {
  method: string
  path: string
  query: URLSearchParams
  headers: http.IncomingHttpHeaders
}

function key (o: Obj): string {
  return o.metadata.namespace !== undefined ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name
}

export class FakeApiServer {
  readonly server: http.Server
  url = ''
  rv = 100
  readonly requests: SeenRequest[] = []
  /** `verb path` pairs answered with 403, e.g. `watch /api/v1/services`. */
  readonly forbidden = new Set<string>()
  /** Path prefixes answered with 404 (a group the server does not serve). */
  readonly notFound = new Set<string>()
  /** Watches from a resourceVersion below this get a 410 ERROR event. */
  expiredBelow = 0
  /** Answer every request with this status (e.g. 503) while set. */
  failWith: number | undefined
  /** Custom handling; return true when the request was answered. */
  override: ((req: IncomingMessage, res: ServerResponse, url: URL) => boolean) | undefined
  readonly #collections = new Map<string, Map<string, Obj>>()
  readonly #history = new Map<string, Recorded[]>()
  readonly #watchers = new Set<{ path: string, res: ServerResponse }>()

  constructor () {
    this.server = http.createServer((req, res) => this.#handle(req, res))
  }

  async listen (port = 0): Promise<this> {
    await new Promise<void>(resolve => this.server.listen(port, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  async close (): Promise<void> {
    this.closeWatches()
    this.server.closeAllConnections()
    await new Promise<void>(resolve => this.server.close(() => resolve()))
  }

  /** Ends every open watch response cleanly (as a server-side timeout would). */
  closeWatches (): void {
    for (const w of this.#watchers) w.res.end()
    this.#watchers.clear()
  }

  watcherCount (): number {
    return this.#watchers.size
  }

  /** Creates or updates an object in a collection path such as `/api/v1/services`. */
  put<O extends Obj> (path: string, obj: O): O {
    const coll = this.#coll(path)
    const stored = structuredClone(obj)
    stored.metadata.resourceVersion = String(++this.rv)
    const existed = coll.has(key(stored))
    coll.set(key(stored), stored)
    this.#record(path, { type: existed ? 'MODIFIED' : 'ADDED', object: stored, rv: this.rv })
    return stored
  }

  remove (path: string, k: string): void {
    const coll = this.#coll(path)
    const prev = coll.get(k)
    if (prev === undefined) return
    coll.delete(k)
    const object = structuredClone(prev)
    object.metadata.resourceVersion = String(++this.rv)
    this.#record(path, { type: 'DELETED', object, rv: this.rv })
  }

  /** Changes state without telling watchers or history: simulates events lost to compaction. */
  putSilently<O extends Obj> (path: string, obj: O): void {
    const stored = structuredClone(obj)
    stored.metadata.resourceVersion = String(++this.rv)
    this.#coll(path).set(key(stored), stored)
  }

  removeSilently (path: string, k: string): void {
    this.#coll(path).delete(k)
    this.rv++
  }

  /** Sends a raw line to the watchers of a path (split across writes if `split`). */
  sendRaw (path: string, text: string, split = false): void {
    for (const w of this.#watchers) {
      if (w.path !== path) continue
      if (!split) {
        w.res.write(text)
        continue
      }
      for (const ch of text) w.res.write(ch)
    }
  }

  #coll (path: string): Map<string, Obj> {
    let c = this.#collections.get(path)
    if (c === undefined) {
      c = new Map()
      this.#collections.set(path, c)
    }
    return c
  }

  #record (path: string, ev: Recorded): void {
    let h = this.#history.get(path)
    if (h === undefined) {
      h = []
      this.#history.set(path, h)
    }
    h.push(ev)
    for (const w of this.#watchers) {
      if (w.path === path) w.res.write(JSON.stringify({ type: ev.type, object: ev.object }) + '\n')
    }
  }

  #status (res: ServerResponse, code: number, message: string, reason: string): void {
    res.writeHead(code, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code }))
  }

  #handle (req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x')
    const watch = url.searchParams.get('watch') === 'true'
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers })
    if (this.override?.(req, res, url) === true) return
    if (this.failWith !== undefined) return this.#status(res, this.failWith, 'injected failure', 'InternalError')
    for (const prefix of this.notFound) {
      if (url.pathname.startsWith(prefix)) {
        res.writeHead(404, { 'Content-Type': 'text/plain' })
        res.end('404 page not found\n')
        return
      }
    }
    const verb = watch ? 'watch' : 'list'
    if (this.forbidden.has(`${verb} ${url.pathname}`)) {
      return this.#status(res, 403, `${url.pathname} is forbidden: User "system:serviceaccount:kubeedge:edgemesh-agent" cannot ${verb} resource`, 'Forbidden')
    }
    if (watch) return this.#watch(url, res)
    const items = [...this.#coll(url.pathname).values()].sort((a, b) => key(a).localeCompare(key(b)))
    const limit = Number(url.searchParams.get('limit') ?? '0')
    const offset = Number(url.searchParams.get('continue') ?? '0')
    const page = limit > 0 ? items.slice(offset, offset + limit) : items
    const next = limit > 0 && offset + limit < items.length ? String(offset + limit) : undefined
    res.writeHead(200, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify({ kind: 'List', metadata: { resourceVersion: String(this.rv), ...(next !== undefined ? { continue: next } : {}) }, items: page }))
  }

  #watch (url: URL, res: ServerResponse): void {
    const from = Number(url.searchParams.get('resourceVersion') ?? '0')
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' })
    // Like the real server: headers go out at once, before any event.
    res.flushHeaders()
    if (from < this.expiredBelow) {
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `too old resource version: ${from} (${this.expiredBelow})`, reason: 'Expired', code: 410 } }) + '\n')
      return
    }
    for (const ev of this.#history.get(url.pathname) ?? []) {
      if (ev.rv > from) res.write(JSON.stringify({ type: ev.type, object: ev.object }) + '\n')
    }
    const w = { path: url.pathname, res }
    this.#watchers.add(w)
    res.on('close', () => this.#watchers.delete(w))
  }
}
