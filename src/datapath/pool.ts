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
/**
 * A framed connection out with a proxied connection younger than this counts
 * as coming back (frames.ts): a short proxied connection returns it before a
 * refill's handshake would finish, and the pool would close one of the two.
 */
const RETURN_HORIZON_MS = 1000

export class ConnectionPool {
  readonly #size: number
  readonly #usable: (nodeName: string, p: Pooled) => boolean
  readonly #pools = new Map<string, Pooled[]>()
  /** Connections on their way into the pool, per peer. */
  readonly #filling = new Map<string, number>()
  /** Peers whose pool was found empty lately: how many it keeps now, and when it was last empty. */
  readonly #grown = new Map<string, { size: number, missedAt: number }>()
  #closed = false
  /** Sockets whose close this pool already watches: a reused connection is added again and again. */
  readonly #watched = new WeakSet<TLSSocket>()
  /** Framed connections out with a proxied connection, per peer, and since when. */
  readonly #lent = new Map<string, Map<TLSSocket, number>>()

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
    return this.size(nodeName) - (this.#pools.get(nodeName)?.length ?? 0) - (this.#filling.get(nodeName) ?? 0) - this.#returning(nodeName)
  }

  /** `socket` carries a framed proxied connection now, and comes back to `add` when it ends cleanly. */
  lend (nodeName: string, socket: TLSSocket): void {
    let lent = this.#lent.get(nodeName)
    if (lent === undefined) { lent = new Map(); this.#lent.set(nodeName, lent) }
    lent.set(socket, Date.now())
    this.#watch(nodeName, socket)
  }

  #returning (nodeName: string): number {
    const lent = this.#lent.get(nodeName)
    if (lent === undefined) return 0
    const now = Date.now()
    let n = 0
    for (const since of lent.values()) if (now - since < RETURN_HORIZON_MS) n++
    return n
  }

  #unlend (nodeName: string, socket: TLSSocket): void {
    const lent = this.#lent.get(nodeName)
    if (lent?.delete(socket) === true && lent.size === 0) this.#lent.delete(nodeName)
  }

  /** Once per socket, however often it comes back: forgotten when it closes, wherever it is. */
  #watch (nodeName: string, socket: TLSSocket): void {
    if (this.#watched.has(socket)) return
    this.#watched.add(socket)
    // An idle pooled connection must not die unnoticed.
    socket.on('error', () => {})
    socket.once('close', () => {
      this.#unlend(nodeName, socket)
      const list = this.#pools.get(nodeName)
      const at = list?.findIndex(q => q.socket === socket) ?? -1
      if (at >= 0) list?.splice(at, 1)
    })
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
    this.#unlend(nodeName, p.socket)
    let pool = this.#pools.get(nodeName)
    if (pool === undefined) { pool = []; this.#pools.set(nodeName, pool) }
    if (this.#closed || pool.length >= this.size(nodeName)) { p.socket.destroy(); return }
    this.#watch(nodeName, p.socket)
    // A connection that skips the relays goes first: the next dial takes it.
    if (p.path !== 'relay') pool.unshift(p)
    else pool.push(p)
  }

  forget (nodeName: string): void {
    for (const p of this.#pools.get(nodeName) ?? []) p.socket.destroy()
    this.#pools.delete(nodeName)
    this.#lent.delete(nodeName)
    this.#grown.delete(nodeName)
  }

  close (): void {
    this.#closed = true
    for (const nodeName of [...this.#pools.keys()]) this.forget(nodeName)
  }
}
