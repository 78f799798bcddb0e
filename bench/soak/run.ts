// Soak bench: a client edge node under steady load through the mesh for
// `--minutes`, then overload at 5× the rates, then recovery at the steady
// rates. Documented here; not part of the default test suite.
//
//   sudo npm run bench:soak [-- --minutes 15 --overload-seconds 60 --recovery-seconds 90 --memory-limit-mib 128 --keep-startup-pages]
//
// Each agent runs in a memory cgroup (v1) limited as the chart limits the
// agent's container (128 MiB; 0: no cgroup): the kernel then reclaims and,
// at the limit, OOM-kills as it would on a node, and the report gives each
// agent's peak usage as the kubelet counts it.
//
// Layout: three namespaces on one bridge (10.89.0.0/24, prefix ems-): `a`
// (client edge node: agent with edgeDNS on 169.254.96.16:53, edgeProxy with
// nftables interception, tunnel with relay r), `r` (relay), `b` (agent and a
// TCP echo server on 7000). `a` drops packets to b, so proxied connections go
// a → r → b through the mesh. Service soak/echo: ClusterIP 10.96.0.41:7000 →
// b. Bundled agents with the image's Node flags, PSK on, data path on.
//
// Load (load.ts, inside `a`): 200 long-lived proxied connections each echoing
// 64 random bytes a second, 2,000 DNS queries/s for echo.soak.svc.cluster.local
// and 50 new proxied connections/s (64-byte verified echo, then close); overload
// is 10,000 queries/s and 250 connections/s.
//
// Measured: each agent's RSS, fds, V8 heap used, CPU and event-loop delay
// every 30 s (every 5 s in overload and recovery), and the CPU the machine
// spent outside the bench (a shared host skews everything else); a
// least-squares fit of RSS and fds against time over the steady phase after a
// warm-up (2 min, or a quarter of a shorter steady phase), "within noise" when
// |slope × 10 min| ≤ 2 × the residual standard deviation; what each agent
// retains after a full collection (forced through the probe) at the end of
// the warm-up and at the end of the steady phase: heap used, RSS and its
// anonymous part (a slope from old space filling between V8's own full
// collections is not retained; a leak is); echo mismatches;
// after the overload stops, the seconds until a 1 s window has ≥ 99 % of DNS
// queries answered and ≥ 99 % of new connections ok, and until each agent's
// fds are back within its steady median + 10; the warn lines the agents
// logged during the overload.
// Acceptance: 0 mismatches, slopes within noise (for RSS: or, over the steady
// phase, ≤ 1 MB more heap and ≤ 2 MB more anonymous memory retained), recovery ≤ 10 s, fds back
// ≤ 60 s, at least one warn line with counts during the overload if any
// connection failed in it.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { bundleForBench } from '../bundle.ts'
import { AGENT_NODE_FLAGS, MALLOC_ENV } from '../../src/bin/node-flags.ts'
import { serviceYaml } from '../../test/helpers/services.ts'
import { bridgeTopology, cpuSeconds, killAll, median, requireRoot, takeBenchLock, rssMB, run, waitFor } from '../netns.ts'
import { residentMB } from '../../src/bin/startup-pages.ts'
import type { Proc } from '../netns.ts'

const { values: opt } = parseArgs({
  options: {
    minutes: { type: 'string', default: '15' },
    'overload-seconds': { type: 'string', default: '60' },
    'recovery-seconds': { type: 'string', default: '90' },
    'memory-limit-mib': { type: 'string', default: '128' },
    // Agents that keep their start's pages mapped (commonConfig.releaseStartupPages: false), to compare.
    'keep-startup-pages': { type: 'boolean' }
  }
})
const MEMORY_LIMIT_MIB = Number(opt['memory-limit-mib'])
const MEMORY_CGROUPS = '/sys/fs/cgroup/memory'
const cgroupOf = (n: Node): string => join(MEMORY_CGROUPS, `edgemesh-soak-${n}`)
const cgroupRead = (n: Node, file: string): string => readFileSync(join(cgroupOf(n), file), 'utf8')

/** A memory cgroup for agent `n` with the limit, for `run`'s options; none with a limit of 0. */
function limited (n: Node): { memoryCgroup?: string } {
  if (MEMORY_LIMIT_MIB === 0) return {}
  if (!existsSync(MEMORY_CGROUPS)) throw new Error(`${MEMORY_CGROUPS} is missing: run with --memory-limit-mib 0 on a machine without cgroup v1 memory`)
  const dir = cgroupOf(n)
  // Left by an interrupted run: a cgroup directory goes with rmdir, once empty.
  if (existsSync(dir)) rmdirSync(dir)
  mkdirSync(dir)
  writeFileSync(join(dir, 'memory.limit_in_bytes'), String(MEMORY_LIMIT_MIB * 1024 * 1024))
  return { memoryCgroup: dir }
}
const STEADY = Number(opt.minutes) * 60
const OVERLOAD_END = STEADY + Number(opt['overload-seconds'])
const END = OVERLOAD_END + Number(opt['recovery-seconds'])
const WARM_UP = Math.min(120, STEADY / 4)
const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..', '..')
const NODES = { a: '10.89.0.1', r: '10.89.0.2', b: '10.89.0.3' } as const
type Node = keyof typeof NODES
const NS = (n: Node | 'br'): string => `ems-${n}`
const CLUSTER_IP = '10.96.0.41'
const NAME = 'echo.soak.svc.cluster.local'

requireRoot('bench:soak')
takeBenchLock('bench:soak')

let teardown = (): void => {}

/** The namespaces; b is reached only through the relay. */
function setup (): void {
  teardown = bridgeTopology('ems', NODES, NODES.r, { from: 'a', to: 'b' })
}

// The agent serves no V8 heap metric: a preload answers SIGUSR2 by writing heapUsed and the
// event-loop delay since the last signal (how far behind the agent is) to $SOAK_PROBE_FILE;
// when $SOAK_PROBE_FILE.gc exists, after a full collection (`gc`, exposed by the preload only).
// Plain JavaScript in a data: URL, so no TypeScript loader is added to the agents' RSS.
const PROBE = 'data:text/javascript,' + encodeURIComponent([
  "import{existsSync,rmSync,writeFileSync}from'node:fs';import{monitorEventLoopDelay}from'node:perf_hooks';import{setFlagsFromString}from'node:v8';import{runInNewContext}from'node:vm'",
  "setFlagsFromString('--expose-gc');const gc=runInNewContext('gc')",
  'const h=monitorEventLoopDelay({resolution:10});h.enable()',
  "process.on('SIGUSR2',()=>{const f=process.env.SOAK_PROBE_FILE;if(existsSync(f+'.gc')){rmSync(f+'.gc');gc()}writeFileSync(f,JSON.stringify({heap:process.memoryUsage().heapUsed,delayP99:h.percentile(99)/1e6}));h.reset()})"
].join(';'))

const agents = new Map<Node, Proc>()

async function startAgents (dir: string, entry: string): Promise<void> {
  for (const n of ['r', 'b', 'a'] as const) {
    const cfg = join(dir, `${n}.yaml`)
    writeFileSync(cfg, [
      'kubeAPIConfig:', `  standaloneFile: ${join(dir, 'services.yaml')}`,
      'commonConfig:', `  stateDir: ${join(dir, n)}`, `  releaseStartupPages: ${String(opt['keep-startup-pages'] !== true)}`,
      'modules:',
      `  edgeDNS: {enable: ${String(n === 'a')}}`,
      `  edgeProxy: {enable: ${String(n === 'a')}}`,
      '  edgeTunnel:',
      '    enable: true',
      `    psk: {enable: true, path: ${join(dir, 'psk')}}`,
      `    relayNodes: [{nodeName: r, advertiseAddress: [${NODES.r}]}]`,
      ''
    ].join('\n'))
    // Heap flags and malloc settings as the image runs the agent (src/bin/node-flags.ts).
    const p = run(NS(n), [process.execPath, ...AGENT_NODE_FLAGS, '--import', PROBE, entry, 'agent', '--config-file', cfg], { ...MALLOC_ENV, NODE_NAME: n, NAMESPACE: 'kubeedge', SOAK_PROBE_FILE: join(dir, `probe-${n}`) }, limited(n))
    await waitFor(p, /"msg":"running"/, 30_000)
    agents.set(n, p)
  }
  await waitFor(agents.get('b') as Proc, /"msg":"data path relays"/, 30_000)
  await new Promise(resolve => setTimeout(resolve, 1500))
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

async function probe (pid: number, file: string): Promise<{ heap: number, delayP99: number }> {
  rmSync(file, { force: true })
  process.kill(pid, 'SIGUSR2')
  // An overloaded agent may take a while to get to the signal.
  for (const end = Date.now() + 3000; Date.now() < end; await sleep(20)) {
    try {
      return JSON.parse(readFileSync(file, 'utf8'))
    } catch {
      // Not written yet.
    }
  }
  return { heap: NaN, delayP99: NaN }
}

/** CPU seconds the whole machine has been busy (all CPUs), from /proc/stat. */
function machineBusy (): number {
  const [user, nice, system, , , irq, softirq, steal] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(1).map(Number)
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100
}

interface Sample { t: number, rss: number, fds: number, heap: number, cpu: number, delayP99: number }
/** What an agent holds after a full collection: heap used, RSS and its anonymous part, MB. */
interface Retained { t: number, heap: number, rss: number, anon: number }

/** After each agent's full collection, forced through the probe; RSS a second later, once V8 has swept and returned pages. */
async function retainedNow (dir: string, t: number, retained: Map<Node, Retained[]>): Promise<void> {
  const heaps = new Map<Node, number>()
  for (const [n, p] of agents) {
    if (p.exitCode !== null) continue
    writeFileSync(join(dir, `probe-${n}.gc`), '')
    heaps.set(n, (await probe(p.pid as number, join(dir, `probe-${n}`))).heap / 1024 / 1024)
  }
  await sleep(1000)
  for (const [n, heap] of heaps) {
    const p = agents.get(n) as Proc
    if (p.exitCode === null) retained.get(n)?.push({ t, heap, ...residentMB(p.pid as number) })
  }
}
/** Per sample: CPU % (of one CPU) since the last one, the whole machine's and what the bench's own processes do not account for. */
interface MachineSample { t: number, busy: number, others: number }

let previous = { at: 0, busy: 0, cpu: new Map<number, number>() }

async function sample (dir: string, t: number, samples: Map<Node, Sample[]>, machine: MachineSample[], bench: Proc[]): Promise<void> {
  const at = performance.now() / 1000
  const busy = machineBusy()
  const cpu = new Map(bench.filter(p => p.exitCode === null).map(p => [p.pid as number, cpuSeconds(p.pid as number)]))
  const pct = (seconds: number): number => 100 * seconds / (at - previous.at)
  let ours = 0
  for (const [pid, seconds] of cpu) ours += seconds - (previous.cpu.get(pid) ?? 0)
  if (previous.at > 0) machine.push({ t, busy: pct(busy - previous.busy), others: pct(busy - previous.busy - ours) })
  for (const [n, p] of agents) {
    if (p.exitCode !== null) continue
    const pid = p.pid as number
    // fds before the probe, which opens a file in the agent.
    const fds = fdCount(pid)
    const rss = rssMB(pid)
    const { heap, delayP99 } = await probe(pid, join(dir, `probe-${n}`))
    samples.get(n)?.push({ t, rss, fds, heap: heap / 1024 / 1024, delayP99, cpu: previous.at > 0 ? pct((cpu.get(pid) ?? 0) - (previous.cpu.get(pid) ?? 0)) : NaN })
  }
  previous = { at, busy, cpu }
}

interface Window {
  span: number
  t: number
  phase: 'steady' | 'overload' | 'recovery'
  long: { ok: number, mismatched: number, failed: number, reopened: number }
  dns: { sent: number, answered: number, wrong: number }
  conn: { attempted: number, ok: number, mismatched: number, failed: number, p50: number, p99: number }
  loop?: { p99: number, max: number }
}

/** Least squares y = a + b·t: b and the residual standard deviation. */
function fit (points: Array<[number, number]>): { slope: number, sd: number } {
  const n = points.length
  const mt = points.reduce((s, [t]) => s + t, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const stt = points.reduce((s, [t]) => s + (t - mt) ** 2, 0)
  const sty = points.reduce((s, [t, y]) => s + (t - mt) * (y - my), 0)
  const slope = sty / stt
  const ssr = points.reduce((s, [t, y]) => s + (y - my - slope * (t - mt)) ** 2, 0)
  return { slope, sd: Math.sqrt(ssr / (n - 2)) }
}

const phaseOf = (t: number): string => t < STEADY ? 'steady' : t < OVERLOAD_END ? 'overload' : 'recovery'
const percent = (part: number, whole: number): string => whole === 0 ? '–' : `${(100 * part / whole).toFixed(2)} %`
const ratioOk = (part: number, whole: number): boolean => whole > 0 && part / whole >= 0.99

async function main (): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-bench-soak-'))
  const entry = await bundleForBench(join(root, 'src/bin/edgemesh.ts'))
  const onSigint = (): void => { killAll(); teardown(); rmSync(dir, { recursive: true, force: true }); process.exit(130) }
  process.once('SIGINT', onSigint)
  setup()
  try {
    writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster', { mode: 0o600 })
    writeFileSync(join(dir, 'services.yaml'), serviceYaml({ name: 'echo', namespace: 'soak', clusterIP: CLUSTER_IP, ports: [{ name: 'echo', port: 7000 }], endpoints: [{ ip: NODES.b, nodeName: 'b' }] }))
    const echo = run(NS('b'), [process.execPath, join(root, 'test/lab/workloads/echo-server.ts'), 'tcp', '--port', '7000'])
    await waitFor(echo, /listening tcp/, 10_000)
    await startAgents(dir, entry)

    const load = run(NS('a'), [process.execPath, join(here, 'load.ts'), '--target', `${CLUSTER_IP}:7000`, '--dns', '169.254.96.16:53', '--name', NAME,
      '--minutes', opt.minutes, '--overload-seconds', opt['overload-seconds'], '--recovery-seconds', opt['recovery-seconds']])
    const ready = await waitFor(load, /\{"ready":\d+,"at":(\d+)\}/, 60_000)
    const startAt = Number(ready[1])
    console.error(`[bench:soak] ${NODES.a}: 200 long-lived connections open; steady ${STEADY} s, overload to ${OVERLOAD_END} s, recovery to ${END} s`)
    const samples = new Map<Node, Sample[]>([...agents.keys()].map(n => [n, []]))
    const retained = new Map<Node, Retained[]>([...agents.keys()].map(n => [n, []]))
    const machine: MachineSample[] = []
    const exited = new Promise(resolve => load.once('exit', resolve))
    let printed = 0
    for (let next = 0; load.exitCode === null && next <= END; next += next < STEADY ? 30 : 5) {
      // Every sample is taken at its time, even when the previous one ran late.
      const wait = startAt + next * 1000 - Date.now()
      if (wait > 0) await Promise.race([sleep(wait), exited])
      if (load.exitCode !== null) break
      await sample(dir, next, samples, machine, [...agents.values(), load, echo])
      // At the first fitted sample and the last steady one.
      const step = next < STEADY ? 30 : 5
      if ((next >= WARM_UP && next - step < WARM_UP) || (next < STEADY && next + step >= STEADY)) await retainedNow(dir, next, retained)
      const lines = load.out().split('\n').filter(l => l.startsWith('{"span":10'))
      for (const l of lines.slice(printed)) {
        const w = JSON.parse(l) as Window
        console.error(`[bench:soak] t=${w.t} s ${w.phase}: DNS ${w.dns.answered}/${w.dns.sent}, new connections ${w.conn.ok}/${w.conn.attempted} (p50 ${w.conn.p50} ms, p99 ${w.conn.p99} ms), long-lived echoes ${w.long.ok} ok ${w.long.mismatched} mismatched ${w.long.failed} failed; load loop delay p99 ${w.loop?.p99 ?? '?'} ms`)
      }
      printed = lines.length
    }
    await exited
    if (!/"done":true/.test(load.out())) throw new Error(`the load program failed:\n${load.out().slice(-3000)}`)
    report(load.out(), samples, retained, machine, startAt)
  } finally {
    process.off('SIGINT', onSigint)
    for (const p of agents.values()) p.kill('SIGTERM')
    await Promise.all([...agents.values()].map(async p => { if (p.exitCode === null) await new Promise(resolve => p.once('exit', resolve)) }))
    killAll()
    teardown()
    rmSync(dir, { recursive: true, force: true })
    for (const n of Object.keys(NODES) as Node[]) {
      try {
        if (MEMORY_LIMIT_MIB > 0 && existsSync(cgroupOf(n))) rmdirSync(cgroupOf(n))
      } catch (err) {
        console.error(`[bench:soak] left ${cgroupOf(n)}: ${(err as Error).message}`)
      }
    }
  }
}

function report (loadOut: string, samples: Map<Node, Sample[]>, retained: Map<Node, Retained[]>, machine: MachineSample[], startAt: number): void {
  const lines = loadOut.split('\n').filter(l => l.startsWith('{'))
  const windows = lines.filter(l => l.startsWith('{"span"')).map(l => JSON.parse(l) as Window)
  const phaseAt = (at: string): number => Number((lines.map(l => JSON.parse(l) as { phase?: string, at?: number }).find(l => l.phase === at && l.at !== undefined) as { at: number }).at)
  const overloadFrom = phaseAt('overload')
  const overloadTo = phaseAt('recovery')
  const out: string[] = []
  out.push(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, kernel ${release()}, Node ${process.version}. Steady ${STEADY / 60} min (2,000 DNS q/s, 50 new connections/s, 200 long-lived connections echoing 64 B/s), overload ${OVERLOAD_END - STEADY} s at 5×, recovery ${END - OVERLOAD_END} s; client a → relay r → endpoint b over the TLS data path, PSK on, bundled agents with ${AGENT_NODE_FLAGS.join(' ')}.`)

  out.push('', "| phase | DNS sent | answered | wrong | new connections | ok | mismatched | p50 ms (median of 10 s windows) | p99 ms (max of 10 s windows) | long-lived echoes ok | mismatched | failed | reopened | load program's loop delay p99 ms (max of 10 s windows) |", '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const phase of ['steady', 'overload', 'recovery'] as const) {
    const ws = windows.filter(w => w.span === 10 && w.phase === phase)
    const sum = (f: (w: Window) => number): number => ws.reduce((s, w) => s + f(w), 0)
    const conns = sum(w => w.conn.attempted)
    const dns = sum(w => w.dns.sent)
    out.push(`| ${phase} | ${dns} | ${percent(sum(w => w.dns.answered), dns)} | ${sum(w => w.dns.wrong)} | ${conns} | ${percent(sum(w => w.conn.ok), conns)} | ${sum(w => w.conn.mismatched)} | ${median(ws.map(w => w.conn.p50).filter(Number.isFinite)).toFixed(1)} | ${Math.max(...ws.map(w => w.conn.p99).filter(Number.isFinite)).toFixed(1)} | ${sum(w => w.long.ok)} | ${sum(w => w.long.mismatched)} | ${sum(w => w.long.failed)} | ${sum(w => w.long.reopened)} | ${Math.max(...ws.map(w => w.loop?.p99 ?? NaN).filter(Number.isFinite)).toFixed(1)} |`)
  }

  out.push('', `Machine CPU since the previous sample, % of one CPU (${cpus().length} in all): busy, and busy outside the bench's processes (other work on a shared host):`, '', '| minute | phase | busy % | others % |', '|---|---|---|---|')
  for (const m of machine) out.push(`| ${(m.t / 60).toFixed(2)} | ${phaseOf(m.t)} | ${m.busy.toFixed(0)} | ${m.others.toFixed(0)} |`)

  const fits: string[] = []
  const kept: string[] = []
  const fdsBack: string[] = []
  let slopesOk = true
  let fdsOk = true
  for (const [n, ss] of samples) {
    out.push('', `Agent ${n} (${n === 'a' ? 'client edge node' : n === 'r' ? 'relay' : 'endpoint node'}); CPU % of one CPU and event-loop delay p99 since the previous sample:`, '', '| minute | phase | RSS MB | fds | heap used MB | CPU % | loop delay p99 ms |', '|---|---|---|---|---|---|---|')
    for (const s of ss) out.push(`| ${(s.t / 60).toFixed(2)} | ${phaseOf(s.t)} | ${s.rss.toFixed(1)} | ${s.fds} | ${s.heap.toFixed(1)} | ${s.cpu.toFixed(0)} | ${s.delayP99.toFixed(1)} |`)
    const steady = ss.filter(s => s.t < STEADY)
    const fitted = steady.filter(s => s.t >= WARM_UP)
    // Growth retained after full collections over the steady phase; undefined without both.
    const [from, to] = [retained.get(n)?.[0], retained.get(n)?.[1]]
    const notRetained = from !== undefined && to !== undefined && to.heap - from.heap <= 1 && to.anon - from.anon <= 2
    if (from !== undefined && to !== undefined) {
      const mb = (x: number, y: number): string => `${x.toFixed(1)} → ${y.toFixed(1)} MB (${y - x >= 0 ? '+' : ''}${(y - x).toFixed(1)})`
      kept.push(`${n}, minute ${(from.t / 60).toFixed(1)} → ${(to.t / 60).toFixed(1)}: heap used ${mb(from.heap, to.heap)}, RSS ${mb(from.rss, to.rss)}, anonymous ${mb(from.anon, to.anon)}: ${notRetained ? 'no growth retained' : 'growth RETAINED'}`)
    }
    for (const [what, unit, get] of [['RSS', 'MB', (s: Sample) => s.rss], ['fds', '', (s: Sample) => s.fds]] as const) {
      if (fitted.length < 3) { fits.push(`${n} ${what}: too few samples after the warm-up to fit`); slopesOk = false; continue }
      const { slope, sd } = fit(fitted.map(s => [s.t, get(s)]))
      const per10 = slope * 600
      const within = Math.abs(per10) <= 2 * sd
      slopesOk &&= within || (what === 'RSS' && notRetained)
      fits.push(`${n} ${what}: slope ${per10 >= 0 ? '+' : ''}${per10.toFixed(2)}${unit === '' ? '' : ` ${unit}`} per 10 min, residual sd ${sd.toFixed(2)}${unit === '' ? '' : ` ${unit}`} (${fitted.length} samples, minute ${(WARM_UP / 60).toFixed(1)}–${(fitted[fitted.length - 1]?.t ?? 0) / 60}): ${within ? 'within noise' : 'NOT within noise'}`)
    }
    const baseline = median(steady.map(s => s.fds))
    const back = ss.find(s => s.t >= OVERLOAD_END && s.fds <= baseline + 10)
    const peak = Math.max(...ss.filter(s => s.t >= STEADY).map(s => s.fds))
    fdsOk &&= back !== undefined && back.t - OVERLOAD_END <= 60
    fdsBack.push(`${n}: baseline ${baseline} fds (steady median), peak ${peak} in overload/recovery, back within baseline + 10 ${back === undefined ? 'NEVER during the recovery phase' : `${back.t - OVERLOAD_END} s after the overload stopped (${back.fds} fds, samples every 5 s)`}`)
  }

  out.push('', `Least-squares fit against time over the steady phase after a ${WARM_UP / 60} min warm-up (within noise: |slope × 10 min| ≤ 2 × residual sd):`, ...fits.map(f => `- ${f}`))
  out.push('', 'Retained after a full collection (forced through the probe; RSS a second later) at the first fitted sample and the last steady one. An RSS slope passes when no growth was retained (≤ 1 MB heap used, ≤ 2 MB anonymous): old space filling between V8\'s own full collections, not a leak:', ...kept.map(k => `- ${k}`))

  const mismatches = windows.filter(w => w.span === 10).reduce((s, w) => s + w.long.mismatched + w.conn.mismatched, 0)
  out.push('', `Verified-echo mismatches (long-lived and new connections, all phases): ${mismatches}`)

  const seconds = windows.filter(w => w.span === 1 && w.phase === 'recovery').sort((x, y) => x.t - y.t)
  const healthy = (w: Window): boolean => ratioOk(w.dns.answered, w.dns.sent) && ratioOk(w.conn.ok, w.conn.attempted)
  const first = seconds.find(healthy)
  const recovered = first === undefined ? NaN : first.t + 1 - OVERLOAD_END
  const relapses = first === undefined ? [] : seconds.filter(w => w.t > first.t && !healthy(w))
  const firstTen = windows.find(w => w.span === 10 && w.t === OVERLOAD_END)
  out.push('', 'After the overload stopped:',
    `- DNS ≥ 99 % answered and new connections ≥ 99 % ok in a 1 s window: ${first === undefined ? 'NEVER during the recovery phase' : `after ${recovered} s (window ${first.t - OVERLOAD_END}–${first.t + 1 - OVERLOAD_END} s: DNS ${first.dns.answered}/${first.dns.sent}, connections ${first.conn.ok}/${first.conn.attempted}); later 1 s windows below 99 %: ${relapses.length} of ${seconds.length - seconds.indexOf(first) - 1}${relapses.length > 0 ? ` (at ${relapses.slice(0, 10).map(w => `${w.t - OVERLOAD_END} s`).join(', ')})` : ''}`}`,
    ...(firstTen !== undefined ? [`- first 10 s window of the recovery: DNS ${percent(firstTen.dns.answered, firstTen.dns.sent)} answered, new connections ${percent(firstTen.conn.ok, firstTen.conn.attempted)} ok`] : []),
    '- each agent\'s fds:', ...fdsBack.map(f => `  - ${f}`))

  out.push('', `Warn lines the agents logged (overload ${new Date(overloadFrom).toISOString()} – ${new Date(overloadTo).toISOString()}):`)
  // Quoted: the overload warn line with the largest count (WarnSummary's `failed`).
  let quoted: { line: string, count: number } | undefined
  for (const [n, p] of agents) {
    const warns = p.out().split('\n').filter(l => /"level":"warn"/.test(l)).map(l => ({ line: l, fields: JSON.parse(l) as Record<string, unknown> }))
    const at = (w: { fields: Record<string, unknown> }): number => Date.parse(w.fields.time as string)
    const during = warns.filter(w => at(w) >= overloadFrom && at(w) <= overloadTo)
    for (const w of during) {
      const count = typeof w.fields.failed === 'number' ? w.fields.failed : -1
      if (quoted === undefined || count > quoted.count) quoted = { line: w.line, count }
    }
    out.push(`- ${n}: ${warns.filter(w => at(w) >= startAt && at(w) < overloadFrom).length} in the steady phase, ${during.length} during the overload, ${warns.filter(w => at(w) > overloadTo).length} after it`)
  }
  // The agents warn about connections they failed; an overload they served in full owes no warn line.
  const overloadFailures = windows.filter(w => w.span === 10 && w.phase === 'overload').reduce((n, w) => n + (w.conn.attempted - w.conn.ok) + w.long.failed, 0)
  const warnWithCounts = overloadFailures === 0 || (quoted !== undefined && quoted.count >= 0)
  if (overloadFailures === 0) out.push('', 'No connection failed during the overload, so no warn line was due.')
  if (quoted !== undefined) out.push('', `The one with the largest count: \`${quoted.line}\``)

  if (MEMORY_LIMIT_MIB > 0) {
    out.push('', `Memory cgroups (limit ${MEMORY_LIMIT_MIB} MiB each, as the chart's): peak usage as the kernel charged it (anonymous memory and page cache the agent brought in), times the limit was hit, OOM kills:`)
    for (const n of agents.keys()) {
      const peak = Number(cgroupRead(n, 'memory.max_usage_in_bytes')) / 1024 / 1024
      const oomKills = /oom_kill (\d+)/.exec(cgroupRead(n, 'memory.oom_control'))?.[1] ?? '?'
      out.push(`- ${n}: peak ${peak.toFixed(1)} MiB (${(100 * peak / MEMORY_LIMIT_MIB).toFixed(0)} % of the limit), limit hit ${cgroupRead(n, 'memory.failcnt').trim()} times, OOM kills ${oomKills}`)
    }
  }

  const died = [...agents].filter(([, p]) => p.exitCode !== null).map(([n, p]) => `${n} (exit ${String(p.exitCode ?? p.signalCode)})`)
  if (died.length > 0) out.push('', `Agents that exited during the run: ${died.join(', ')}`)
  const recoveryOk = first !== undefined && recovered <= 10
  out.push('', `Acceptance: ${died.length === 0 && mismatches === 0 && slopesOk && recoveryOk && fdsOk && warnWithCounts ? 'met' : 'NOT met'}: ` +
    `mismatches ${mismatches === 0 ? 'ok' : 'FAIL'}, RSS (or its retained growth) and fd slopes within noise ${slopesOk ? 'ok' : 'FAIL'}, DNS and new connections back within 10 s ${recoveryOk ? 'ok' : 'FAIL'}, fds back within 60 s ${fdsOk ? 'ok' : 'FAIL'}, warn line with counts during the overload ${overloadFailures === 0 ? 'not due (nothing failed)' : warnWithCounts ? 'ok' : 'FAIL'}`)
  console.log(out.join('\n'))
  process.exitCode = out[out.length - 1]?.startsWith('Acceptance: met') === true ? 0 : 1
}

await main()
