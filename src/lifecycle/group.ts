import { ComponentStartError } from '../errors.ts'
import type { Component, StopOptions } from './component.ts'
import type { Logger } from '../observability/logger.ts'

/**
 * Starts components sequentially in declared order; on a failure stops the
 * one that failed (it may hold what it opened before failing) and the ones
 * already started, in reverse, and throws ComponentStartError. `stop()` runs
 * in reverse order and is idempotent.
 */
export class LifecycleGroup implements Component {
  readonly name: string
  readonly #components: readonly Component[]
  readonly #log: Logger
  #started: Component[] = []
  #stopping: Promise<void> | undefined

  constructor (name: string, components: readonly Component[], log: Logger) {
    this.name = name
    this.#components = components
    this.#log = log
  }

  async start (): Promise<void> {
    this.#stopping = undefined
    for (const c of this.#components) {
      const t0 = performance.now()
      try {
        await c.start()
      } catch (err) {
        this.#log.error('start failed, rolling back', { component: c.name, err })
        this.#started.push(c)
        await this.#stopStarted({ rollback: true })
        throw new ComponentStartError(c.name, { cause: err })
      }
      this.#started.push(c)
      this.#log.debug('started', { component: c.name, ms: Math.round(performance.now() - t0) })
    }
  }

  async stop (options: StopOptions = {}): Promise<void> {
    this.#stopping ??= this.#stopStarted(options)
    await this.#stopping
  }

  isReady (): boolean {
    return this.notReady().length === 0
  }

  /** The components that are not started or not ready yet: their names, or what they say is missing. */
  notReady (): string[] {
    return this.#components.filter(c => !this.#started.includes(c) || !(c.isReady?.() ?? true)).flatMap(c => {
      const why = this.#started.includes(c) ? c.whyNotReady?.() ?? [] : []
      return why.length > 0 ? why : [c.name]
    })
  }

  async #stopStarted (options: StopOptions): Promise<void> {
    while (this.#started.length > 0) {
      const c = this.#started.pop() as Component
      try {
        await c.stop(options)
      } catch (err) {
        // Keep stopping the rest: one bad component must not leak the others' handles.
        this.#log.error('stop failed', { component: c.name, err })
      }
    }
  }
}
