// Helpers the benches share: the one-bench-at-a-time lock, medians, and for
// the network benches (root only) commands, processes inside network
// namespaces, waiting for their output, RSS.
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function requireRoot (bench: string): void {
  if (process.getuid?.() !== 0) {
    console.error(`${bench} needs root (network namespaces and nftables)`)
    process.exit(2)
  }
}

// In the temporary directory, so benches that run without root take it too.
const BENCH_LOCK = join(tmpdir(), 'edgemesh-bench.lock')

/**
 * One bench at a time on a machine: two runs of one bench build their labs under the same names and tear down
 * each other's, and any two share the CPUs they measure. Exits when another bench holds the lock; a lock whose
 * process is gone is taken over. Released at exit.
 */
export function takeBenchLock (bench: string): void {
  for (let tries = 0; tries < 2; tries++) {
    try {
      writeFileSync(BENCH_LOCK, `${process.pid} ${bench}\n`, { flag: 'wx' })
      process.on('exit', () => {
        try {
          if (readFileSync(BENCH_LOCK, 'utf8').startsWith(`${process.pid} `)) rmSync(BENCH_LOCK)
        } catch {}
      })
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const [pid = '', holder = 'a bench'] = readFileSync(BENCH_LOCK, 'utf8').trim().split(' ')
    if (alive(Number(pid))) {
      console.error(`${bench}: ${holder} (pid ${pid}) is running; run one bench at a time (${BENCH_LOCK})`)
      process.exit(2)
    }
    rmSync(BENCH_LOCK, { force: true })
  }
  throw new Error(`${bench}: could not take ${BENCH_LOCK}`)
}

function alive (pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export function sh (argv: string[], input?: string): string {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', input })
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`)
  return r.stdout
}

export function exec (ns: string, argv: string[]): string {
  return sh(['ip', 'netns', 'exec', ns, ...argv])
}

export function ensureIperf (): void {
  if (spawnSync('sh', ['-c', 'command -v iperf3']).status === 0) return
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  if (spawnSync('apt-get', ['install', '-y', '-qq', 'iperf3'], { stdio: 'inherit', env }).status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    sh(['apt-get', 'install', '-y', '-qq', 'iperf3'])
  }
}

export type Proc = ChildProcess & { out: () => string }

/** Processes started by `run`, killed by `killAll`. */
const children: ChildProcess[] = []

/**
 * Runs argv in namespace `ns`; with `memoryCgroup` or `cpuCgroup` (cgroup v1
 * memory or cpu directories) inside those cgroups, joined before `ip netns
 * exec`, which hides the host's cgroup mounts. Each step execs the next: the
 * pid is argv's.
 */
export function run (ns: string, argv: string[], env: Record<string, string> = {}, options: { memoryCgroup?: string | undefined, cpuCgroup?: string | undefined } = {}): Proc {
  // Output goes to a file, not a pipe: the bench blocks in spawnSync while it measures, and a process
  // writing to a full pipe nobody drains stalls (Node writes pipes synchronously on Linux).
  const log = join(logDir(), `${children.length}-${ns}.log`)
  const fd = openSync(log, 'w')
  const inNs = ['ip', 'netns', 'exec', ns, ...argv]
  const cgroups = [options.memoryCgroup, options.cpuCgroup].filter(c => c !== undefined)
  const command = cgroups.length === 0 ? inNs : ['sh', '-c', `${cgroups.map(c => `echo $$ > ${join(c, 'cgroup.procs')}`).join(' && ')} && exec "$@"`, 'sh', ...inNs]
  const child = spawn(command[0] as string, command.slice(1), { env: { ...process.env, ...env }, stdio: ['pipe', fd, fd] })
  closeSync(fd)
  children.push(child)
  return Object.assign(child, { out: () => readFileSync(log, 'utf8') })
}

let logs: string | undefined
function logDir (): string {
  if (logs === undefined) {
    // BENCH_LOG_DIR keeps every process's output after the run (e.g. with --trace-gc in BENCH_AGENT_FLAGS).
    const keep = process.env.BENCH_LOG_DIR
    if (keep !== undefined) mkdirSync(keep, { recursive: true })
    const dir = keep ?? mkdtempSync(join(tmpdir(), 'edgemesh-bench-logs-'))
    logs = dir
    if (keep === undefined) process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  }
  return logs
}

/**
 * Deletes a namespace after killing every process still in it. A killed
 * nginx master leaves its workers running, and a namespace's processes
 * outlive its name: without this each bench:gateway run left two nginx
 * workers behind.
 */
export function deleteNetns (name: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout ?? ''
  for (const pid of pids.split('\n').filter(p => /^\d+$/.test(p))) {
    try { process.kill(Number(pid), 'SIGKILL') } catch {}
  }
  spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' })
}

export function killAll (): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
}

export async function waitFor (child: { out: () => string }, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const m = pattern.exec(child.out())
    if (m !== null) return m
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${String(pattern)}:\n${child.out().slice(-3000)}`)
}

export function rssMB (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? NaN) / 1024
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) / 100
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] as number : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2
}

/** iperf3 single stream for `seconds`: received MB/s. */
export function iperf (ns: string, host: string, port: number, seconds: number): number {
  const r = JSON.parse(exec(ns, ['iperf3', '-c', host, '-p', String(port), '-t', String(seconds), '-J'])) as { end: { sum_received: { bits_per_second: number } } }
  return r.end.sum_received.bits_per_second / 8 / 1e6
}

/**
 * Namespaces `<prefix>-<node>` on one bridge (in `<prefix>-br`), each with its address/24 on eth0
 * and a default route via `gateway` (ClusterIPs need a route before DNAT picks the real
 * destination). `cutOff` drops what `from` sends to `to`, as a NAT would: only a relay reaches it.
 * Returns the teardown, which also runs first to clear a killed run's leftovers.
 */
export function bridgeTopology (prefix: string, nodes: Record<string, string>, gateway: string, cutOff?: { from: string, to: string }): () => void {
  const ns = (n: string): string => `${prefix}-${n}`
  const teardown = (): void => { for (const n of [...Object.keys(nodes), 'br']) deleteNetns(ns(n)) }
  teardown()
  sh(['ip', 'netns', 'add', ns('br')])
  sh(['ip', '-n', ns('br'), 'link', 'add', 'br0', 'type', 'bridge'])
  sh(['ip', '-n', ns('br'), 'link', 'set', 'br0', 'up'])
  for (const [n, ip] of Object.entries(nodes)) {
    sh(['ip', 'netns', 'add', ns(n)])
    sh(['ip', 'link', 'add', 'eth0', 'netns', ns(n), 'type', 'veth', 'peer', `p-${n}`, 'netns', ns('br')])
    sh(['ip', '-n', ns('br'), 'link', 'set', `p-${n}`, 'master', 'br0', 'up'])
    sh(['ip', '-n', ns(n), 'link', 'set', 'lo', 'up'])
    sh(['ip', '-n', ns(n), 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    sh(['ip', '-n', ns(n), 'link', 'set', 'eth0', 'up'])
    sh(['ip', '-n', ns(n), 'route', 'add', 'default', 'via', gateway])
  }
  if (cutOff !== undefined) {
    sh(['ip', 'netns', 'exec', ns(cutOff.from), 'nft', '-f', '-'], `table inet ${prefix} {\n  chain out {\n    type filter hook output priority 0;\n    ip daddr ${nodes[cutOff.to] as string} drop\n  }\n}\n`)
  }
  return teardown
}

/**
 * A cgroup v1 cpu group with the weight Kubernetes gives a container that
 * requests `milliCpu` (cpu.shares = milliCpu × 1024 / 1000, at least 2).
 * Removed at exit, once its processes are gone.
 */
export function cpuGroup (name: string, milliCpu: number): string {
  const dir = join('/sys/fs/cgroup/cpu', name)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'cpu.shares'), String(Math.max(2, Math.round(milliCpu * 1024 / 1000))))
  process.on('exit', () => { try { rmdirSync(dir) } catch {} })
  return dir
}
