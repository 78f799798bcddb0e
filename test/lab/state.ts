/**
 * Lab state on disk (/run/edgemesh-lab/<id>.json) and teardown by name
 * prefix. The state file is written before the first namespace exists and
 * removed after the last one is gone, so `eml-<id>-*` namespaces without a
 * live owner are always leftovers of a killed run.
 */
import { readFileSync, readdirSync, rmSync, writeFileSync, renameSync, mkdirSync } from 'node:fs'
import { readFile, readdir, rm, writeFile, rename, mkdir } from 'node:fs/promises'
import { setTimeout as delay } from 'node:timers/promises'
import { join } from 'node:path'
import type { Topology } from './topology.ts'
import { listNetns, listNetnsSync, netnsPids, netnsPidsSync, run, runSync } from './netns.ts'

export const NS_PREFIX = 'eml-'
export const DEFAULT_STATE_DIR = '/run/edgemesh-lab'
const ETC_NETNS = '/etc/netns'

export interface Owner {
  pid: number
  /** Process start time from /proc/<pid>/stat, so a reused pid does not count as alive. */
  startTicks: string
}

export interface ProcessRecord {
  pid: number
  node: string
  pod?: string
  argv: string[]
  logPath: string
}

export interface LabState {
  version: 1
  id: string
  topology: Topology
  /** null: detached (left up by `lab up`), removed only by `down`. */
  owner: Owner | null
  status: 'building' | 'up'
  createdAt: string
  namespaces: string[]
  logDir: string
  processes: ProcessRecord[]
}

export function statePath (stateDir: string, id: string): string {
  return join(stateDir, `${id}.json`)
}

export function labDir (stateDir: string, id: string): string {
  return join(stateDir, id)
}

export function nsPrefix (id: string): string {
  return `${NS_PREFIX}${id}-`
}

/** The lab id encoded in a namespace or /etc/netns name, if it is one of ours. */
export function idOfName (name: string): string | undefined {
  if (!name.startsWith(NS_PREFIX)) return undefined
  const m = /^([a-z0-9]{1,12})-/.exec(name.slice(NS_PREFIX.length))
  return m?.[1]
}

function startTicks (pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 22, counted after the parenthesised command name (which may hold spaces).
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

export function currentOwner (): Owner {
  return { pid: process.pid, startTicks: startTicks(process.pid) ?? '' }
}

export function ownerAlive (owner: Owner): boolean {
  const t = startTicks(owner.pid)
  return t !== undefined && t === owner.startTicks
}

/** Live: a detached lab or one whose owner process still runs. */
export function isLive (state: LabState): boolean {
  return state.owner === null || ownerAlive(state.owner)
}

export async function readState (stateDir: string, id: string): Promise<LabState | undefined> {
  try {
    return JSON.parse(await readFile(statePath(stateDir, id), 'utf8')) as LabState
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    // A corrupt file cannot describe a live lab; treat it as a leftover.
    return undefined
  }
}

/** Atomic write: a concurrent reader never sees half a file. */
export async function writeState (stateDir: string, state: LabState): Promise<void> {
  await mkdir(stateDir, { recursive: true })
  const tmp = join(stateDir, `.${state.id}.json.${process.pid}.tmp`)
  await writeFile(tmp, JSON.stringify(state, null, 2))
  await rename(tmp, statePath(stateDir, state.id))
}

export function writeStateSync (stateDir: string, state: LabState): void {
  mkdirSync(stateDir, { recursive: true })
  const tmp = join(stateDir, `.${state.id}.json.${process.pid}.tmp`)
  writeFileSync(tmp, JSON.stringify(state, null, 2))
  renameSync(tmp, statePath(stateDir, state.id))
}

export async function listStates (stateDir: string = DEFAULT_STATE_DIR): Promise<LabState[]> {
  let names: string[]
  try {
    names = await readdir(stateDir)
  } catch {
    return []
  }
  const states: LabState[] = []
  for (const n of names) {
    if (n.startsWith('.') || !n.endsWith('.json')) continue
    const s = await readState(stateDir, n.slice(0, -'.json'.length))
    if (s !== undefined) states.push(s)
  }
  return states
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function signal (pids: readonly number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try { process.kill(pid, sig) } catch {}
  }
}

/** SIGTERM, poll until gone or the deadline, then SIGKILL. */
export async function killPids (pids: readonly number[], graceMs: number): Promise<void> {
  if (pids.length === 0) return
  signal(pids, 'SIGTERM')
  const deadline = Date.now() + graceMs
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    if (!pids.some(isAlive)) return
    await delay(20)
  }
  signal(pids.filter(isAlive), 'SIGKILL')
}

const sleeper = new Int32Array(new SharedArrayBuffer(4))

export function killPidsSync (pids: readonly number[], graceMs: number): void {
  if (pids.length === 0) return
  signal(pids, 'SIGTERM')
  const deadline = Date.now() + graceMs
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    if (!pids.some(isAlive)) return
    // No event loop in an exit handler: block briefly between polls.
    Atomics.wait(sleeper, 0, 0, 20)
  }
  signal(pids.filter(isAlive), 'SIGKILL')
}

async function etcNetnsNames (): Promise<string[]> {
  try {
    return await readdir(ETC_NETNS)
  } catch {
    return []
  }
}

function etcNetnsNamesSync (): string[] {
  try {
    return readdirSync(ETC_NETNS)
  } catch {
    return []
  }
}

/**
 * Removes everything of lab `id`: processes in its namespaces, the
 * namespaces (links go with them), /etc/netns entries, state file and dir.
 */
export async function teardownById (stateDir: string, id: string, options: { graceMs?: number, keepLogs?: boolean } = {}): Promise<string[]> {
  const prefix = nsPrefix(id)
  const names = (await listNetns()).filter(n => n.startsWith(prefix))
  const pids = [...new Set((await Promise.all(names.map(netnsPids))).flat())]
  await killPids(pids, options.graceMs ?? 3000)
  const problems: string[] = []
  // Aliases (bind mounts of a namespace) first, then the namespaces themselves.
  const ordered = [...names.filter(n => n.endsWith('.pod')), ...names.filter(n => !n.endsWith('.pod'))]
  for (const n of ordered) {
    const r = await run(['ip', 'netns', 'del', n])
    if (r.code !== 0 && !/No such file/.test(r.stderr)) problems.push(`ip netns del ${n}: ${r.stderr.trim()}`)
  }
  for (const n of (await etcNetnsNames()).filter(n => n.startsWith(prefix))) {
    await rm(join(ETC_NETNS, n), { recursive: true, force: true })
  }
  if (options.keepLogs !== true) await rm(labDir(stateDir, id), { recursive: true, force: true })
  await rm(statePath(stateDir, id), { force: true })
  return problems
}

export function teardownByIdSync (stateDir: string, id: string, options: { graceMs?: number, keepLogs?: boolean } = {}): void {
  const prefix = nsPrefix(id)
  const names = listNetnsSync().filter(n => n.startsWith(prefix))
  const pids = [...new Set(names.flatMap(netnsPidsSync))]
  killPidsSync(pids, options.graceMs ?? 2000)
  const ordered = [...names.filter(n => n.endsWith('.pod')), ...names.filter(n => !n.endsWith('.pod'))]
  for (const n of ordered) runSync(['ip', 'netns', 'del', n])
  for (const n of etcNetnsNamesSync().filter(n => n.startsWith(prefix))) {
    rmSync(join(ETC_NETNS, n), { recursive: true, force: true })
  }
  if (options.keepLogs !== true) rmSync(labDir(stateDir, id), { recursive: true, force: true })
  rmSync(statePath(stateDir, id), { force: true })
}

/**
 * Removes leftovers of killed runs: every lab id seen in /run/netns,
 * /etc/netns or the state dir whose state is missing or whose owner is dead.
 * Labs of live processes and detached labs are kept. Returns the removed ids.
 */
export async function sweepLeftovers (stateDir: string = DEFAULT_STATE_DIR): Promise<string[]> {
  const ids = new Set<string>()
  for (const n of await listNetns()) {
    const id = idOfName(n)
    if (id !== undefined) ids.add(id)
  }
  for (const n of await etcNetnsNames()) {
    const id = idOfName(n)
    if (id !== undefined) ids.add(id)
  }
  for (const s of await listStates(stateDir)) ids.add(s.id)
  const removed: string[] = []
  for (const id of ids) {
    const state = await readState(stateDir, id)
    if (state !== undefined && isLive(state)) continue
    await teardownById(stateDir, id, { graceMs: 500 })
    removed.push(id)
  }
  return removed
}
