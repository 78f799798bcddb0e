/**
 * Idle connections per peer, already through their handshake, so that a new
 * proxied connection does not wait for one. Connections arriving faster than
 * the pool refills find it empty and pay a handshake (at 100 new
 * connections/s, one in five with two pooled): each miss keeps one more for
 * that peer, up to GROWTH times the configured size, until the peer has had
 * no miss for IDLE_MS.
 */
import type { TLSSocket } from 'node:tls'
import type { DataPathKind } from './types.ts'

export interface Pooled { socket: TLSSocket, path: DataPathKind, via?: string, at: number }

/** A pooled connection older than this is not used (the peer may have dropped it unnoticed). */
export const IDLE_MS = 30_000
const GROWTH = 4

export class ConnectionPool {
  readonly #size: number
  readonly #usable: (nodeName: string, p: Pooled) => boolean
  readonly #pools = new Map<string, Pooled[]>()
  /** Connections on their way into the pool, per peer. */
  readonly #filling = new Map<string, number>()
  /** Peers whose pool was found empty lately: how many it keeps now, and when it was last empty. */
  readonly #grown = new Map<string, { size: number, missedAt: number }>()
  #closed = false

  /** `usable` tells whether a pooled connection may still carry one (e.g. its punched path still stands). */
  constructor (init: { size: number, usable?: (nodeName: string, p: Pooled) => boolean }) {
    this.#size = init.size
    this.#usable = init.usable ?? (() => true)
  }

  /** A ready connection to `nodeName`, or undefined (a miss, which grows that peer's pool). */
  take (nodeName: string): Pooled | undefined {
    const pool = this.#pools.get(nodeName) ?? []
    for (let p = pool.shift(); p !== undefined; p = pool.shift()) {
      if (this.#usable(nodeName, p) && !p.socket.destroyed && p.socket.readyState === 'open' && Date.now() - p.at < IDLE_MS) return p
      p.socket.destroy()
    }
    if (this.#size > 0) this.#grown.set(nodeName, { size: Math.min(this.#size * GROWTH, this.size(nodeName) + 1), missedAt: Date.now() })
    return undefined
  }

  /** How many `nodeName`'s pool keeps now. */
  size (nodeName: string): number {
    const grown = this.#grown.get(nodeName)
    if (grown === undefined) return this.#size
    if (Date.now() - grown.missedAt < IDLE_MS) return grown.size
    this.#grown.delete(nodeName)
    return this.#size
  }

  /** How many more to make for `nodeName`, counting those on their way (each surplus one would be handshaken only to be closed). */
  missing (nodeName: string): number {
    if (this.#closed) return 0
    return this.size(nodeName) - (this.#pools.get(nodeName)?.length ?? 0) - (this.#filling.get(nodeName) ?? 0)
  }

  /** Runs `make` `n` times for `nodeName`, counting them as on their way until each settles; what they give is added. */
  fill (nodeName: string, n: number, make: () => Promise<Pooled>): void {
    this.#filling.set(nodeName, (this.#filling.get(nodeName) ?? 0) + n)
    for (let i = 0; i < n; i++) {
      make().then(p => { this.add(nodeName, p) }, () => {}).finally(() => {
        const left = (this.#filling.get(nodeName) ?? 1) - 1
        if (left <= 0) this.#filling.delete(nodeName)
        else this.#filling.set(nodeName, left)
      })
    }
  }

  /** Keeps `p` for the next connection to `nodeName`, or closes it when the pool is full. */
  add (nodeName: string, p: Pooled): void {
    let pool = this.#pools.get(nodeName)
    if (pool === undefined) { pool = []; this.#pools.set(nodeName, pool) }
    if (this.#closed || pool.length >= this.size(nodeName)) { p.socket.destroy(); return }
    // An idle pooled connection must not die unnoticed.
    p.socket.on('error', () => {})
    const list = pool
    p.socket.once('close', () => { const at = list.indexOf(p); if (at >= 0) list.splice(at, 1) })
    // A connection that skips the relays goes first: the next dial takes it.
    if (p.path !== 'relay') pool.unshift(p)
    else pool.push(p)
  }

  forget (nodeName: string): void {
    for (const p of this.#pools.get(nodeName) ?? []) p.socket.destroy()
    this.#pools.delete(nodeName)
    this.#grown.delete(nodeName)
  }

  close (): void {
    this.#closed = true
    for (const nodeName of [...this.#pools.keys()]) this.forget(nodeName)
  }
}
