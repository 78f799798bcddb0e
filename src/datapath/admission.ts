/**
 * Who may hold a socket on the data path port before proving the PSK.
 * Anyone can connect to this port (relays are public), and each held socket
 * costs memory: until a connection authenticates (a finished TLS handshake,
 * or a relay request with a valid MAC) it gets a deadline, and only so many
 * such connections are held at once, per source address and in total.
 */
import type { Socket } from 'node:net'
import type { Counter } from 'prom-client'
import type { Logger } from '../observability/logger.ts'
import { WarnSummary } from '../observability/warn-summary.ts'

export type RejectReason = 'handshake_timeout' | 'eof_before_handshake' | 'handshake_failed' | 'too_many_pending' | 'unknown_protocol'

export interface AdmissionLimits {
  /** @default 5000 */
  handshakeTimeoutMs?: number
  /** @default 512 */
  maxPending?: number
  /** @default 128 */
  maxPendingPerSource?: number
}

export class Admission {
  readonly #rejected: Counter<'reason'>
  readonly #warn: WarnSummary
  readonly #timeoutMs: number
  readonly #max: number
  readonly #maxPerSource: number
  readonly #bySource = new Map<string, number>()
  #total = 0

  constructor (deps: { logger: Logger, rejected: Counter<'reason'> }, limits: AdmissionLimits = {}) {
    this.#rejected = deps.rejected
    this.#warn = new WarnSummary(deps.logger, 'data path connections closed before proving the PSK (another PSK, a scanner, or a flood)')
    this.#timeoutMs = limits.handshakeTimeoutMs ?? 5000
    this.#max = limits.maxPending ?? 512
    this.#maxPerSource = limits.maxPendingPerSource ?? 128
  }

  get timeoutMs (): number {
    return this.#timeoutMs
  }

  /**
   * Admits a new connection until it authenticates or its deadline passes;
   * returns the callback that marks it authenticated, or undefined when it
   * was over a cap and is closed already.
   */
  admit (socket: Socket): (() => void) | undefined {
    const source = socket.remoteAddress ?? ''
    const fromSource = this.#bySource.get(source) ?? 0
    if (this.#total >= this.#max || fromSource >= this.#maxPerSource) {
      this.reject('too_many_pending', socket)
      return undefined
    }
    this.#bySource.set(source, fromSource + 1)
    this.#total++
    let pending = true
    const release = (): void => {
      if (!pending) return
      pending = false
      clearTimeout(deadline)
      this.#total--
      const n = (this.#bySource.get(source) ?? 1) - 1
      if (n <= 0) this.#bySource.delete(source)
      else this.#bySource.set(source, n)
    }
    const deadline = setTimeout(() => { if (pending) this.reject('handshake_timeout', socket) }, this.#timeoutMs)
    socket.once('close', release)
    return release
  }

  /**
   * Closes a connection that did not authenticate; counted once, however many
   * of its deadlines and errors report it, and summed up in a rate-limited warn.
   */
  reject (reason: RejectReason, socket: { destroyed: boolean, destroy: () => void }): void {
    if (socket.destroyed) return
    socket.destroy()
    this.#rejected.inc({ reason })
    this.#warn.record(reason)
  }

  stop (): void {
    this.#warn.stop()
  }
}
