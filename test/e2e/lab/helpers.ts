import { setTimeout as delay } from 'node:timers/promises'
import type { Lab } from '../../lab/index.ts'
import { workload } from '../../lab/index.ts'

export const isRoot = process.getuid?.() === 0
/** For describe(): skip the suite unless root (namespaces and nftables need it). */
export const rootOnly = isRoot ? {} : { skip: 'needs root' }

export interface ProbeResult {
  target: string
  ok: boolean
  reply?: string
  error?: string
}

/** Runs the probe workload inside `from` and returns one result per target. */
export async function probe (lab: Lab, from: string, mode: 'tcp' | 'udp', targets: string[], extra: string[] = []): Promise<ProbeResult[]> {
  const r = await lab.exec(from, workload('probe', mode, ...targets, ...extra))
  if (r.code !== 0) throw new Error(`probe from ${from} failed (${r.code}): ${r.stderr}`)
  return JSON.parse(r.stdout) as ProbeResult[]
}

/** Polls `condition` until it returns true or the deadline passes. */
export async function waitFor (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let i = 0; i < 10_000; i++) {
    if (await condition()) return
    if (Date.now() >= deadline) break
    await delay(25)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}
