/**
 * Failed proxied connections are routine one at a time (an endpoint going
 * away) and an outage in bulk: each is logged at debug, and at most one warn
 * line per interval sums them up by service and reason, so that a node that
 * fails most connections says so without flooding its log.
 */
import type { Logger } from '../observability/logger.ts'

export class FailureLog {
  readonly #log: Logger
  readonly #everyMs: number
  #counts = new Map<string, number>()
  #total = 0
  #lastWarn = -Infinity
  #timer: NodeJS.Timeout | undefined

  constructor (log: Logger, everyMs = 30_000) {
    this.#log = log
    this.#everyMs = everyMs
  }

  record (service: string, reason: string): void {
    const key = `${service} ${reason}`
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1)
    this.#total++
    const wait = this.#lastWarn + this.#everyMs - performance.now()
    if (wait <= 0) this.flush()
    // Failures after a warn are reported when the interval is up, not with the next failure.
    else this.#timer ??= setTimeout(() => { this.#timer = undefined; this.flush() }, wait).unref()
  }

  /** Writes the warn line for what was recorded since the last one. */
  flush (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#total === 0) return
    this.#lastWarn = performance.now()
    const top = [...this.#counts].sort((a, b) => b[1] - a[1]).slice(0, 10)
    this.#log.warn('proxied connections failed', { failed: this.#total, sinceMs: this.#everyMs, top: Object.fromEntries(top) })
    this.#counts = new Map()
    this.#total = 0
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
