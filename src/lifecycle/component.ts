/**
 * The one lifecycle contract every long-lived object follows.
 *
 * - The constructor stores config and dependencies only: no sockets, timers,
 *   files or network calls.
 * - `start()` performs every side effect. It may assume that components
 *   declared before it in the group are started.
 * - `stop()` is idempotent: stop taking work, drain until `signal` aborts,
 *   then release every handle the component owns.
 */
export interface Component {
  /** Stable name: log namespace, metric subsystem, error context. */
  readonly name: string
  start (): Promise<void>
  stop (options?: StopOptions): Promise<void>
  /** Readiness for /readyz (informers synced, listener bound, ...). */
  isReady? (): boolean
  /** When not ready, what in words (`gateway port 80 on 10.0.0.5: EADDRINUSE`); the name is used without it. */
  whyNotReady? (): string[]
}

export interface StopOptions {
  /** Aborts when the drain deadline has passed: release everything now. */
  signal?: AbortSignal
  /**
   * The group's start failed: also undo what this run's start() created on
   * the host (a plain stop may leave such things for the next run).
   */
  rollback?: boolean
}
