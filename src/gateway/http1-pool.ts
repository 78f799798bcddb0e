/**
 * Idle HTTP/1.1 connections to backends, per endpoint, for the gateway's
 * fast path. A connection is lent for one request and its response and comes
 * back only when both ended cleanly; one that closes or errors while idle
 * leaves the pool, and one idle for `idleMs` is closed.
 */
import type { Duplex } from 'node:stream'

export interface Http1PoolOptions {
  /** Idle connections kept per endpoint; more are closed on release. */
  maxIdlePerKey: number
  idleMs: number
}

interface Idle { conn: Duplex, timer: NodeJS.Timeout, forget: () => void }

export class Http1Pool {
  readonly #idle = new Map<string, Idle[]>()
  readonly #o: Http1PoolOptions
  #closed = false

  constructor (o: Http1PoolOptions) {
    this.#o = o
  }

  /** An idle connection to `key`, most recently used first; undefined when there is none. */
  take (key: string): Duplex | undefined {
    const list = this.#idle.get(key) ?? []
    for (let idle = list.pop(); idle !== undefined; idle = list.pop()) {
      idle.forget()
      if (!idle.conn.destroyed && idle.conn.writable) {
        if (list.length === 0) this.#idle.delete(key)
        return idle.conn
      }
    }
    this.#idle.delete(key)
    return undefined
  }

  /** Gives back a connection whose last response ended cleanly; `idleMs` shortens the idle time (the backend's `Keep-Alive: timeout`). */
  release (key: string, conn: Duplex, idleMs = this.#o.idleMs): void {
    const list = this.#idle.get(key) ?? []
    if (this.#closed || conn.destroyed || list.length >= this.#o.maxIdlePerKey) { conn.destroy(); return }
    const drop = (): void => {
      const i = list.indexOf(idle)
      if (i >= 0) list.splice(i, 1)
      if (list.length === 0 && this.#idle.get(key) === list) this.#idle.delete(key)
      idle.forget()
      conn.destroy()
    }
    // Bytes from an idle backend are a protocol error: the connection cannot carry another response.
    const onData = (): void => { drop() }
    const timer = setTimeout(drop, Math.min(idleMs, this.#o.idleMs))
    timer.unref()
    const idle: Idle = {
      conn,
      timer,
      forget: () => {
        clearTimeout(timer)
        conn.off('close', drop)
        conn.off('end', drop)
        conn.off('error', drop)
        conn.off('data', onData)
      }
    }
    conn.on('close', drop)
    conn.on('end', drop)
    conn.on('error', drop)
    conn.on('data', onData)
    list.push(idle)
    this.#idle.set(key, list)
  }

  /** How many idle connections are kept. */
  get size (): number {
    let n = 0
    for (const list of this.#idle.values()) n += list.length
    return n
  }

  close (): void {
    this.#closed = true
    for (const list of this.#idle.values()) for (const idle of list) { idle.forget(); idle.conn.destroy() }
    this.#idle.clear()
  }
}
