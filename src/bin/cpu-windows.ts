/**
 * The process's own CPU use, one window of `everyMs` at a time: what the
 * entry point's start-only settings wait on (turbofan.ts, startup-pages.ts).
 */
export interface CpuWindowsInit {
  /** Called with each window's CPU, in cores (0.1 = 10 % of one core); returns true when done watching. */
  onWindow: (share: number) => boolean
  cpuUsage?: () => NodeJS.CpuUsage
  /** @default 1000 */
  everyMs?: number
}

/** Starts watching; returns what stops the watch (it also ends once `onWindow` returns true). */
export function watchCpuWindows (init: CpuWindowsInit): () => void {
  const cpuUsage = init.cpuUsage ?? (() => process.cpuUsage())
  const everyMs = init.everyMs ?? 1000
  let last = cpuUsage()
  const timer = setInterval(() => {
    const now = cpuUsage()
    const used = now.user - last.user + now.system - last.system
    last = now
    if (init.onWindow(used / (everyMs * 1000))) clearInterval(timer)
  }, everyMs)
  timer.unref()
  return () => { clearInterval(timer) }
}
