/**
 * At most `max` holders at once; the others wait, newest first. Under overload
 * a first-come queue serves clients that are about to give up (or already
 * have), while everyone shares the CPU and nobody finishes in time: waiting
 * newest first, with a bounded number working, keeps the ones that are served
 * fast. A waiter whose signal aborts leaves the queue at once and costs nothing.
 */
export class Limiter {
  readonly #max: number
  #held = 0
  readonly #waiting: Array<() => void> = []

  constructor (max: number) {
    this.#max = max
  }

  /** Resolves with the release function once a slot is free; rejects with the signal's reason when it aborts first. */
  async acquire (signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted()
    if (this.#held < this.#max) return this.#take()
    return await new Promise((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve(this.#take())
      }
      const onAbort = (): void => {
        const at = this.#waiting.lastIndexOf(grant)
        if (at >= 0) this.#waiting.splice(at, 1)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiting.push(grant)
    })
  }

  /** Holders now, and waiters. */
  get held (): number { return this.#held }
  get waiting (): number { return this.#waiting.length }

  #take (): () => void {
    this.#held++
    let released = false
    return () => {
      if (released) return
      released = true
      this.#held--
      this.#waiting.pop()?.()
    }
  }
}
