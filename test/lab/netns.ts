/**
 * Thin wrappers over `ip`, `nft`, `tc` and `apt-get`. Every failure names the
 * command that failed and what it printed.
 */
import { spawn, spawnSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export interface RunResult {
  stdout: string
  stderr: string
  /** Exit code; null when killed by a signal (see `signal`). */
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
}

export interface RunOptions {
  input?: string
  env?: NodeJS.ProcessEnv
  /** Kill with SIGKILL after this long. @default 60000 */
  timeoutMs?: number
  cwd?: string
}

export class CommandError extends Error {
  override readonly name = 'CommandError'
  readonly argv: readonly string[]
  readonly result: RunResult
  constructor (argv: readonly string[], result: RunResult) {
    const how = result.timedOut ? 'timed out' : result.signal !== null ? `killed by ${result.signal}` : `exit ${result.code}`
    const out = (result.stderr.trim() || result.stdout.trim()).slice(0, 2000)
    super(`command failed (${how}): ${argv.join(' ')}${out === '' ? '' : `\n${out}`}`)
    this.argv = argv
    this.result = result
  }
}

const searchDirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']
const resolved = new Map<string, string>()

/** Absolute path of a binary, also searching sbin dirs a non-login PATH may lack. */
export function findBinary (name: string): string | undefined {
  if (name.includes('/')) return name
  const hit = resolved.get(name)
  if (hit !== undefined) return hit
  const dirs = [...(process.env.PATH ?? '').split(':').filter(d => d !== ''), ...searchDirs]
  for (const dir of dirs) {
    const p = join(dir, name)
    try {
      accessSync(p, constants.X_OK)
      resolved.set(name, p)
      return p
    } catch {}
  }
  return undefined
}

function resolveArgv (argv: readonly string[]): [string, string[]] {
  const [cmd, ...args] = argv
  if (cmd === undefined) throw new Error('empty command')
  return [findBinary(cmd) ?? cmd, args]
}

/** Runs a command without a shell; resolves whatever its exit code. */
export function run (argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, args] = resolveArgv(argv)
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: options.env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timedOut = false
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, options.timeoutMs ?? 60_000)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(new Error(`cannot run ${argv.join(' ')}: ${e.message}`, { cause: e }))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code, signal, timedOut })
    })
    // The child may exit without reading stdin; that is not our error.
    child.stdin.on('error', () => {})
    child.stdin.end(options.input ?? '')
  })
}

/** Like run, but throws CommandError unless the exit code is 0. */
export async function check (argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const r = await run(argv, options)
  if (r.code !== 0) throw new CommandError(argv, r)
  return r
}

/** Synchronous run, for exit handlers where the event loop is gone. */
export function runSync (argv: readonly string[], options: { input?: string, timeoutMs?: number } = {}): RunResult {
  const [cmd, args] = resolveArgv(argv)
  const r = spawnSync(cmd, args, { input: options.input, timeout: options.timeoutMs ?? 10_000, encoding: 'utf8' })
  return {
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? (r.error?.message ?? ''),
    code: r.status,
    signal: r.signal,
    timedOut: r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT'
  }
}

// Binaries the lab and its clients use, and the Debian package of each.
const toolPackages: Record<string, string> = {
  ip: 'iproute2',
  tc: 'iproute2',
  nft: 'nftables',
  // The 'upnp' NAT kind's router (NAT-PMP, PCP and UPnP-IGD).
  miniupnpd: 'miniupnpd-nftables',
  sysctl: 'procps',
  mount: 'mount',
  dig: 'dnsutils',
  nslookup: 'dnsutils',
  curl: 'curl',
  ping: 'iputils-ping'
}

let toolsChecked = false

/** Installs the Debian packages of missing binaries (fresh CI machines). */
export async function ensureTools (): Promise<void> {
  if (toolsChecked) return
  const missing = [...new Set(Object.entries(toolPackages).filter(([bin]) => findBinary(bin) === undefined).map(([, pkg]) => pkg))]
  if (missing.length > 0) {
    if (findBinary('apt-get') === undefined) throw new Error(`missing packages ${missing.join(' ')} and no apt-get to install them`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const install = ['apt-get', '-o', 'DPkg::Lock::Timeout=120', 'install', '-y', '--no-install-recommends', ...missing]
    const first = await run(install, { env, timeoutMs: 600_000 })
    if (first.code !== 0) {
      // A fresh image often has no package lists yet.
      await check(['apt-get', '-o', 'DPkg::Lock::Timeout=120', 'update'], { env, timeoutMs: 600_000 })
      await check(install, { env, timeoutMs: 600_000 })
    }
    resolved.clear()
    const still = Object.keys(toolPackages).filter(bin => findBinary(bin) === undefined)
    if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.join(' ')}`)
  }
  toolsChecked = true
}

/** `ip` inside a namespace. */
export function ipIn (ns: string, args: readonly string[]): Promise<RunResult> {
  return check(['ip', '-n', ns, ...args])
}

export async function addNetns (ns: string): Promise<void> {
  await check(['ip', 'netns', 'add', ns])
  await ipIn(ns, ['link', 'set', 'lo', 'up'])
}

/** A second name for a namespace: `ip netns exec` reads /etc/netns/<name>, so each name gets its own files. */
export async function aliasNetns (ns: string, alias: string): Promise<void> {
  await writeFile(`/run/netns/${alias}`, '', { flag: 'a' })
  await check(['mount', '--bind', `/run/netns/${ns}`, `/run/netns/${alias}`])
}

/** A veth pair created directly inside two namespaces: nothing touches the root namespace. */
export async function addVeth (nsA: string, ifA: string, nsB: string, ifB: string): Promise<void> {
  if (ifA.length > 15 || ifB.length > 15) throw new Error(`interface name too long: ${ifA} / ${ifB}`)
  await check(['ip', 'link', 'add', ifA, 'netns', nsA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB])
}

export async function sysctlIn (ns: string, key: string, value: string): Promise<void> {
  await check(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', `${key}=${value}`])
}

export async function nftIn (ns: string, ruleset: string): Promise<void> {
  await check(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: ruleset })
}

export async function tbfIn (ns: string, dev: string, rate: string, burst: string, latency: string): Promise<void> {
  await check(['tc', '-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', burst, 'latency', latency])
}

/** Names of every namespace under /run/netns. */
export async function listNetns (): Promise<string[]> {
  const r = await check(['ip', 'netns', 'list'])
  return parseNetnsList(r.stdout)
}

export function listNetnsSync (): string[] {
  return parseNetnsList(runSync(['ip', 'netns', 'list']).stdout)
}

function parseNetnsList (out: string): string[] {
  // Lines look like "name" or "name (id: 3)".
  return out.split('\n').map(l => l.trim().split(' ')[0] ?? '').filter(n => n !== '')
}

export async function netnsPids (ns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', ns])
  return parsePids(r.stdout)
}

export function netnsPidsSync (ns: string): number[] {
  return parsePids(runSync(['ip', 'netns', 'pids', ns]).stdout)
}

function parsePids (out: string): number[] {
  return out.split(/\s+/).filter(s => /^\d+$/.test(s)).map(Number).filter(p => p !== process.pid)
}
