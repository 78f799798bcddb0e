/**
 * Events that are routine one at a time and alarming in bulk (failed proxied
 * connections, connections closed before proving the PSK): each is counted
 * by key, the first of a quiet period is warned about at once, and then at
 * most one warn line per interval sums them up, so that a flood says so
 * without flooding the log.
 */
import type { Logger } from './logger.ts'

export class WarnSummary {
  readonly #log: Logger
  readonly #message: string
  readonly #everyMs: number
  #counts = new Map<string, number>()
  #total = 0
  #lastWarn = -Infinity
  #timer: NodeJS.Timeout | undefined

  constructor (log: Logger, message: string, everyMs = 30_000) {
    this.#log = log
    this.#message = message
    this.#everyMs = everyMs
  }

  record (key: string, count = 1): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + count)
    this.#total += count
    const wait = this.#lastWarn + this.#everyMs - performance.now()
    if (wait <= 0) this.flush()
    // Events after a warn are reported when the interval is up, not with the next event.
    else this.#timer ??= setTimeout(() => { this.#timer = undefined; this.flush() }, wait).unref()
  }

  /** Writes the warn line for what was recorded since the last one. */
  flush (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#total === 0) return
    this.#lastWarn = performance.now()
    const top = [...this.#counts].sort((a, b) => b[1] - a[1]).slice(0, 10)
    this.#log.warn(this.#message, { failed: this.#total, sinceMs: this.#everyMs, top: Object.fromEntries(top) })
    this.#counts = new Map()
    this.#total = 0
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
