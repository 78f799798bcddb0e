/**
 * The one place that copies bytes between two streams (proxy listeners,
 * SOCKS5, the data path's server and relay, the libp2p responder).
 *
 * Contract, for two duplexes `a` and `b` (sockets made with allowHalfOpen):
 * - bytes flow both ways with backpressure (`pipe`);
 * - half-close: when one side ends (sends FIN), the other's write side is
 *   ended, and the opposite direction keeps flowing until it ends too;
 * - reset: an error on one side resets the other (a TCP socket gets a RST
 *   through `resetAndDestroy()`, anything else is destroyed);
 * - release: when one side is gone (closed) while the other still has data to
 *   read, that data has nowhere to go, so the other side is destroyed. No
 *   socket outlives its peer, whatever ended it;
 * - every stream read from is reported to the buffer reclaimer.
 */
import type { Duplex } from 'node:stream'
import type { CopiedStreams } from './buffer-reclaimer.ts'

export interface SpliceOptions {
  /** Bytes already read from `a` (a peeked request head), written to `b` first. */
  head?: Buffer | undefined
  /** `a` already ended while its head was read: only `b → a` is left to copy. */
  aEnded?: boolean
  copied?: CopiedStreams | undefined
}

export function splice (a: Duplex, b: Duplex, options: SpliceOptions = {}): void {
  const { head, aEnded = false, copied } = options
  a.on('error', () => { reset(b) })
  b.on('error', () => { reset(a) })
  a.once('close', () => { release(b) })
  b.once('close', () => { release(a) })
  if (head !== undefined && head.length > 0) b.write(head)
  copied?.track(b)
  if (aEnded) {
    b.end()
  } else {
    copied?.track(a)
    a.pipe(b)
  }
  b.pipe(a)
}

/** Destroys `s` unless its own end already arrived (then it finishes flushing and closes by itself). */
function release (s: Duplex): void {
  if (!s.destroyed && !s.readableEnded) s.destroy()
}

function reset (s: Duplex): void {
  if (s.destroyed) return
  const socket = s as Duplex & { resetAndDestroy?: () => void }
  // resetAndDestroy throws on a socket that never connected; destroy is the same to the peer then.
  try {
    if (typeof socket.resetAndDestroy === 'function') { socket.resetAndDestroy(); return }
  } catch {}
  s.destroy()
}
