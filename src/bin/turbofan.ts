/**
 * Turns V8's optimising compiler (TurboFan), and its baseline compiler
 * (Sparkplug), on once the agent works (node-flags.ts starts it without;
 * Maglev stays off).
 *
 * Work is the process's own CPU time: `busyWindows` windows of `everyMs` in a
 * row, each with at least `busyShare` of a core, or one window with
 * `burstShare` (a transfer uses a whole core). An idle agent uses under 1 %
 * on average, in bursts: up to 90 ms in one second and 50 ms in two seconds
 * in a row (redials, the memory reducer's collections; measured without the
 * optimising compilers, in bench/footprint's scenarios), so work is two
 * seconds in a row at 10 % of a core or more. 100 proxied connections a
 * second, at about 1.5 ms of CPU each (a profile of bench/tunnel's churn,
 * optimised), use about 15 %; unoptimised, more.
 *
 * It stays on for good: its code stays resident anyway once it has run.
 * Windows are short because a transfer that starts on an idle agent runs
 * unoptimised until then: with one 2 s window at 3 %, bench/tunnel's first
 * 3 s transfer after the agents started ran at 201 MB/s against about 300.
 */
import { watchCpuWindows } from './cpu-windows.ts'

export interface TurboFanInit {
  /** Sets the flags that turn it on; `share` is the last busy window's CPU, in cores. */
  turnOn: (share: number) => void
  cpuUsage?: () => NodeJS.CpuUsage
  /** @default 1000 */
  everyMs?: number
  /** @default 0.1 */
  busyShare?: number
  /** @default 2 */
  busyWindows?: number
  /** @default 0.5 */
  burstShare?: number
}

/** Starts watching; returns what stops the watch (it also ends once `turnOn` ran). */
export function turnOnTurboFanWhenBusy (init: TurboFanInit): () => void {
  const busy = init.busyShare ?? 0.1
  const needed = init.busyWindows ?? 2
  const burst = init.burstShare ?? 0.5
  let busyInARow = 0
  return watchCpuWindows({
    ...(init.cpuUsage !== undefined ? { cpuUsage: init.cpuUsage } : {}),
    ...(init.everyMs !== undefined ? { everyMs: init.everyMs } : {}),
    onWindow: share => {
      busyInARow = share >= busy ? busyInARow + 1 : 0
      if (busyInARow < needed && share < burst) return false
      init.turnOn(share)
      return true
    }
  })
}
