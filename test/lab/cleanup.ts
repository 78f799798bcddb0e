/**
 * Process-wide safety net: labs owned by this process are torn down
 * synchronously on exit (normal, uncaught exception, process.exit) and on
 * SIGINT/SIGTERM/SIGHUP, so a failing or interrupted run leaves nothing behind.
 */
import { constants } from 'node:os'

export interface SyncTeardown {
  teardownSync (): void
}

const live = new Set<SyncTeardown>()
let installed = false

function teardownAll (): void {
  for (const lab of [...live]) {
    live.delete(lab)
    try {
      lab.teardownSync()
    } catch {
      // Keep going: the next lab must still be removed, and the next start sweeps what is left.
    }
  }
}

function onSignal (sig: NodeJS.Signals): void {
  teardownAll()
  // Only decide the exit if nobody else listens; otherwise their handler owns it.
  if (process.listenerCount(sig) <= 1) process.exit(128 + (constants.signals[sig] ?? 1))
}

function install (): void {
  if (installed) return
  installed = true
  process.on('exit', teardownAll)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal)
}

export function track (lab: SyncTeardown): void {
  install()
  live.add(lab)
}

export function untrack (lab: SyncTeardown): void {
  live.delete(lab)
}
