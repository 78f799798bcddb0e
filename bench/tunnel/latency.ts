// Latency part of bench/tunnel (issue 19): a 64-byte echo at a fixed rate on
// one long-lived connection (p50/p99/p999), and new connections at a fixed
// rate, each one 64-byte exchange (connect to reply), on every path of a
// phase, under three conditions of the client and endpoint node:
//   idle   nothing else runs;
//   bulk   an iperf3 transfer through the same path at the same time;
//   busy   one busy-looping process per core (another workload on the node).
// The cost of opening a connection is the new-connection p50 minus the echo
// p50 of the same path and condition: what the handshakes add to one exchange.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { exec, median, run } from '../netns.ts'

export type Condition = 'idle' | 'bulk' | 'busy'
export const CONDITIONS: readonly Condition[] = ['idle', 'bulk', 'busy']

export interface Percentiles { p50: number, p99: number, p999: number }
export interface LatencySample { echo: Percentiles, open: Percentiles }
export interface LatencyTarget { host: string, iperf: number, echo: number }
export interface LatencyOptions {
  ns: string
  seconds: number
  rate: number
  churn: number
  client: string
  /** A cgroup v1 cpu directory the busy-loopers join (a pod with their CPU request), as the agents run in one of theirs. */
  hogCgroup?: string | undefined
}

/** Starts what `condition` asks for beside the measurement; returns how to stop it. */
async function startCondition (condition: Condition, ns: string, target: LatencyTarget, seconds: number, hogCgroup?: string): Promise<() => void> {
  if (condition === 'idle') return () => {}
  if (condition === 'bulk') {
    // Longer than both measurements; stopped when they are done.
    const bulk = run(ns, ['iperf3', '-c', target.host, '-p', String(target.iperf), '-t', String(Math.ceil(seconds * 2 + 5))])
    await new Promise(resolve => setTimeout(resolve, 500))
    return () => { bulk.kill('SIGKILL') }
  }
  const hogs: ChildProcess[] = cpus().map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }))
  if (hogCgroup !== undefined) for (const h of hogs) writeFileSync(join(hogCgroup, 'cgroup.procs'), String(h.pid))
  // A bench that fails mid-measurement must not leave them spinning.
  const killHogs = (): void => { for (const h of hogs) h.kill('SIGKILL') }
  process.once('exit', killHogs)
  await new Promise(resolve => setTimeout(resolve, 200))
  return () => { process.removeListener('exit', killHogs); killHogs() }
}

/** One echo measurement and one new-connection measurement on `target` under `condition`. */
export async function measureLatency (target: LatencyTarget, condition: Condition, o: LatencyOptions): Promise<LatencySample> {
  const stop = await startCondition(condition, o.ns, target, o.seconds, o.hogCgroup)
  try {
    const address = `${target.host}:${target.echo}`
    const echo = JSON.parse(exec(o.ns, [process.execPath, o.client, 'rate', address, String(o.seconds), String(o.rate)])) as Percentiles
    const open = JSON.parse(exec(o.ns, [process.execPath, o.client, 'churn', address, String(o.seconds), String(o.churn)])) as Percentiles & { errors: number }
    if (open.errors > 0) console.error(`${address} ${condition}: ${open.errors} new connections failed`)
    return { echo, open }
  } finally {
    stop()
  }
}

/** A path's samples by condition, over the rounds. */
export type LatencyByCondition = Record<Condition, LatencySample[]>
export const emptyLatency = (): LatencyByCondition => ({ idle: [], bulk: [], busy: [] })

/**
 * The report: per condition, each path's echo p50/p99/p999 and its p99 against
 * the bare TLS forwarders', and the cost of opening a connection against raw
 * TCP's. Medians over the rounds of each figure.
 */
export function latencyReport (rows: Array<{ label: string, samples: LatencyByCondition, judged?: boolean }>, floors: { raw: string, tlsPair: string | undefined }, o: { rate: number, churn: number, seconds: number, rounds: number }): string {
  const byLabel = new Map(rows.map(r => [r.label, r.samples]))
  const med = (xs: LatencySample[], pick: (s: LatencySample) => number): number => median(xs.map(pick))
  const openCost = (xs: LatencySample[]): number => med(xs, s => s.open.p50) - med(xs, s => s.echo.p50)
  const out = [
    `Echo: 64 bytes at ${o.rate}/s on one connection for ${o.seconds} s. New connections: ${o.churn}/s for ${o.seconds} s, each one 64-byte exchange, timed from connect to reply. Opening cost: new-connection p50 minus echo p50. Medians of ${o.rounds} rounds. Conditions: idle; bulk (iperf3 through the same path meanwhile); busy (one busy-looping process per core).`,
    '',
    '| condition | path | echo p50 µs | p99 µs | p999 µs | p99 ÷ TLS pair p99 | new conn p50 µs | p99 µs | opening cost µs | ÷ raw TCP cost |',
    '|---|---|---|---|---|---|---|---|---|---|'
  ]
  /** Issue 19's lines, for the paths through the mesh: echo p99 ≤ 1.5× the TLS pair's, opening cost ≤ 1.5× raw TCP's. */
  const missed: string[] = []
  let judged = 0
  for (const c of CONDITIONS) {
    const tlsP99 = floors.tlsPair !== undefined ? med(byLabel.get(floors.tlsPair)?.[c] ?? [], s => s.echo.p99) : NaN
    const rawCost = openCost(byLabel.get(floors.raw)?.[c] ?? [])
    for (const { label, samples, judged: judge } of rows) {
      const xs = samples[c]
      if (xs.length === 0) continue
      const p99 = med(xs, s => s.echo.p99)
      const cost = openCost(xs)
      if (judge === true) {
        judged++
        if (!(p99 / tlsP99 <= 1.5)) missed.push(`${c} ${label}: echo p99 ${Number.isNaN(tlsP99) ? 'without the TLS pair to compare' : `${(p99 / tlsP99).toFixed(2)}× the TLS pair's`}`)
        if (!(cost / rawCost <= 1.5)) missed.push(`${c} ${label}: opening cost ${(cost / rawCost).toFixed(2)}× raw TCP's`)
      }
      out.push(`| ${c} | ${label} | ${med(xs, s => s.echo.p50).toFixed(0)} | ${p99.toFixed(0)} | ${med(xs, s => s.echo.p999).toFixed(0)} | ${Number.isNaN(tlsP99) ? '–' : (p99 / tlsP99).toFixed(2)} | ${med(xs, s => s.open.p50).toFixed(0)} | ${med(xs, s => s.open.p99).toFixed(0)} | ${cost.toFixed(0)} | ${label === floors.raw ? '1.00' : (cost / rawCost).toFixed(2)} |`)
    }
  }
  if (judged > 0) {
    out.push('', `Issue 19's targets (echo p99 ≤ 1.5× the bare TLS pair's, opening cost ≤ 1.5× raw TCP's), ${2 * judged} checks over ${judged} path and condition pairs: ${missed.length === 0 ? 'met' : `NOT met in ${missed.length}: ${missed.join('; ')}`}.`)
  }
  return out.join('\n')
}
