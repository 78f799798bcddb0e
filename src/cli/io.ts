import type { Logger } from '../observability/logger.ts'

/** What a command may touch of the process: streams and environment. */
export interface CommandIO {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  env: NodeJS.ProcessEnv
  /** Resolves when the user asks the process to stop (SIGTERM/SIGINT); the second ask aborts `force`. */
  shutdown: ShutdownSignal
  /** Called once an agent or gateway has started and serves, with its logger (the entry point's start-only settings end there). */
  onRunning?: (log: Logger, after: RunningSettings) => void
}

/** What the entry point may do to the process once it runs. */
export interface RunningSettings {
  /** Unmap the start's file-backed pages once idle (`commonConfig.releaseStartupPages`; the agent only). */
  releaseStartupPages: boolean
}

export interface ShutdownSignal {
  /** Aborted on the first SIGTERM/SIGINT. */
  requested: AbortSignal
  /** Aborted on the second signal: stop draining now. */
  force: AbortSignal
}

/** Exit codes shared by every command. */
export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2
