/**
 * Connections to backends for the gateway's HTTP/1.1 fast path, kept alive
 * per endpoint. Each connection gets its listeners once, when it is adopted:
 * its events go to whoever uses it now (one request and its response), and
 * while it is idle any event (bytes, end, error) drops it. That spares the
 * fast path adding and removing listeners on every request.
 */
import type { Duplex } from 'node:stream'

export interface Http1PoolOptions {
  /** Idle connections kept per endpoint; more are closed on release. */
  maxIdlePerKey: number
  idleMs: number
}

/** What uses a backend connection: it gets the connection's bytes, and once, its end. */
export interface ConnectionUser {
  onUpstreamData: (chunk: Buffer) => void
  /** The connection ended, closed or failed. */
  onUpstreamGone: () => void
}

export class BackendConnection {
  /** Who gets the events now; undefined while idle in the pool. */
  user: ConnectionUser | undefined
  /** While idle: when the pool closes it (ms, performance.now()). */
  idleUntil = 0
  readonly socket: Duplex
  /** The endpoint, `ip:port`. */
  readonly key: string
  #gone = false

  constructor (socket: Duplex, key: string, idleEvent: (c: BackendConnection) => void) {
    this.socket = socket
    this.key = key
    socket.on('data', (chunk: Buffer) => {
      const user = this.user
      if (user !== undefined) user.onUpstreamData(chunk)
      else idleEvent(this)
    })
    const gone = (): void => {
      if (this.#gone) return
      this.#gone = true
      const user = this.user
      if (user !== undefined) user.onUpstreamGone()
      else idleEvent(this)
    }
    socket.on('end', gone)
    socket.on('close', gone)
    socket.on('error', gone)
  }

  /** Neither ended nor closed: it can carry a request. */
  get usable (): boolean {
    return !this.#gone && !this.socket.destroyed && this.socket.writable
  }
}

export class Http1Pool {
  readonly #idle = new Map<string, BackendConnection[]>()
  readonly #o: Http1PoolOptions
  #sweeper: NodeJS.Timeout | undefined
  #closed = false

  constructor (o: Http1PoolOptions) {
    this.#o = o
  }

  /** Installs the listeners on a new connection to `key`. */
  adopt (socket: Duplex, key: string): BackendConnection {
    return new BackendConnection(socket, key, c => { this.#drop(c) })
  }

  /** An idle connection to `key`, most recently used first; undefined when there is none. */
  take (key: string): BackendConnection | undefined {
    const list = this.#idle.get(key)
    if (list === undefined) return undefined
    const now = performance.now()
    for (let c = list.pop(); c !== undefined; c = list.pop()) {
      if (c.usable && c.idleUntil > now) {
        if (list.length === 0) this.#idle.delete(key)
        return c
      }
      c.socket.destroy()
    }
    this.#idle.delete(key)
    return undefined
  }

  /** Gives back a connection whose last response ended cleanly; `idleMs` shortens the idle time (the backend's `Keep-Alive: timeout`). */
  release (c: BackendConnection, idleMs = this.#o.idleMs): void {
    c.user = undefined
    const list = this.#idle.get(c.key) ?? []
    if (this.#closed || !c.usable || list.length >= this.#o.maxIdlePerKey) { c.socket.destroy(); return }
    c.idleUntil = performance.now() + Math.min(idleMs, this.#o.idleMs)
    list.push(c)
    this.#idle.set(c.key, list)
    if (this.#sweeper === undefined) {
      this.#sweeper = setInterval(() => { this.#sweep() }, Math.max(1000, this.#o.idleMs / 2))
      this.#sweeper.unref()
    }
  }

  /** How many idle connections are kept. */
  get size (): number {
    let n = 0
    for (const list of this.#idle.values()) n += list.length
    return n
  }

  close (): void {
    this.#closed = true
    clearInterval(this.#sweeper)
    for (const list of this.#idle.values()) for (const c of list) c.socket.destroy()
    this.#idle.clear()
  }

  /** An idle connection that sent bytes (a protocol error), ended or failed. */
  #drop (c: BackendConnection): void {
    const list = this.#idle.get(c.key)
    const i = list?.indexOf(c) ?? -1
    if (list !== undefined && i >= 0) {
      list.splice(i, 1)
      if (list.length === 0) this.#idle.delete(c.key)
    }
    c.socket.destroy()
  }

  /** Closes connections idle past their time. */
  #sweep (): void {
    const now = performance.now()
    for (const [key, list] of this.#idle) {
      const keep = list.filter(c => c.idleUntil > now && c.usable)
      for (const c of list) if (!keep.includes(c)) c.socket.destroy()
      if (keep.length === 0) this.#idle.delete(key)
      else this.#idle.set(key, keep)
    }
    if (this.#idle.size === 0) { clearInterval(this.#sweeper); this.#sweeper = undefined }
  }
}
