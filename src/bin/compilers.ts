/**
 * Turns V8's optimising compilers on once the agent works (node-flags.ts
 * starts it without them).
 *
 * Work is the process's own CPU time: every `everyMs`, at least `busyShare`
 * of a core. An idle agent uses under 1 % (timers, keepalives, a redial now
 * and then, measured in bench/footprint's scenarios); 100 proxied
 * connections a second, at about 1.5 ms of CPU each (a profile of
 * bench/tunnel's churn), use about 15 %. The first busy window turns them on
 * for good: their code stays resident anyway once they have run. Windows are
 * short because a transfer that starts on an idle agent runs unoptimised
 * until then: with 2 s windows and a 3 % share, bench/tunnel's first 3 s
 * transfer after the agents started ran at 201 MB/s against about 300.
 */
export interface CompilersInit {
  /** Sets the flags that turn the compilers on; `share` is the busy window's CPU, in cores. */
  turnOn: (share: number) => void
  cpuUsage?: () => NodeJS.CpuUsage
  /** @default 1000 */
  everyMs?: number
  /** @default 0.05 */
  busyShare?: number
}

/** Starts watching; returns what stops the watch (it also ends once the compilers are on). */
export function turnOnCompilersWhenBusy (init: CompilersInit): () => void {
  const cpuUsage = init.cpuUsage ?? (() => process.cpuUsage())
  const everyMs = init.everyMs ?? 1000
  const busyMicros = everyMs * 1000 * (init.busyShare ?? 0.05)
  let last = cpuUsage()
  const timer = setInterval(() => {
    const now = cpuUsage()
    const used = now.user - last.user + now.system - last.system
    last = now
    if (used < busyMicros) return
    clearInterval(timer)
    init.turnOn(used / (everyMs * 1000))
  }, everyMs)
  timer.unref()
  return () => { clearInterval(timer) }
}
