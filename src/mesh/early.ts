/**
 * Early data. A dial through a peer may hand back its connection as soon as
 * the request is on its way, before the far agent has connected to the
 * endpoint: the client's first bytes then travel with the request instead of
 * one round trip later. The far agent reads them only once it has connected
 * (any agent does: it reads one request line and leaves the rest in the
 * socket), and discards them when it refuses, so they can go to another
 * endpoint. The caller may write at once but must not read before the
 * answer: `earlyAnswer` gives it.
 */
import type { Duplex } from 'node:stream'

const answers = new WeakMap<Duplex, Promise<void>>()

/** Marks `conn` as not answered yet; `answered` rejects with the far agent's refusal or the failure. */
export function markEarly<T extends Duplex> (conn: T, answered: Promise<void>): T {
  // Whoever dialed may drop the connection without waiting for its answer.
  answered.catch(() => {})
  answers.set(conn, answered)
  return conn
}

/** The far agent's answer for a connection returned early; undefined for one that was answered before it was returned. */
export function earlyAnswer (conn: Duplex): Promise<void> | undefined {
  return answers.get(conn)
}
