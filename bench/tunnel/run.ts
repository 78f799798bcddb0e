// Tunnel bench: raw TCP vs the libp2p tunnel and vs the TLS data path, each
// direct and through a relay, in one run (phases: agents with the data path
// off, then on, then with a punched UDP path a → b2), rotating order, medians; relay CPU and RSS under a
// 50-stream load; a relay holding 200 simulated edge nodes; latency of an
// echo at a fixed rate and of new connections, idle, beside a bulk transfer
// and with every core busy (latency.ts), for the data path and the bare Node
// forwarders.
//
//   sudo npm run bench:tunnel [-- --rounds 3 --seconds 3 --phases libp2p,datapath,punched,ceiling,libp2p-ceiling --streams 50 --sim-nodes 200 --sim-rate 0.25 --latency-seconds 5 --no-throughput --rate 200 --churn 100 --conditions idle,bulk,busy --agent-cpu-request 50 --no-psk --no-native --out /tmp/tunnel.md]
//   (results go into docs/benchmarks.md)
//
// --no-native runs pnet's XSalsa20 in the xsalsa20 WebAssembly instead of
// libsodium: the bundle then finds no `sodium-native` next to it, as a
// deployment without the addon would not.
//
// Layout: four namespaces on one bridge (10.88.0.0/24): `a` (client, agent
// with proxy + tunnel), `r` (relay), `b1` (a relay too, so `a` dials it
// directly), `b2` (reached only through `r`: `a` drops packets to it, as a NAT would). b1 and b2 run an iperf3 server
// and a TCP echo. ClusterIP 10.96.0.31 → endpoint on b1 (direct tunnel),
// 10.96.0.32 → endpoint on b2 (relayed). All bundled agents, PSK on.
// The `punched` phase lets UDP from a to b2 through (TCP stays dropped): a's
// first connection to b2 goes through r, the two agents punch a UDP path, and
// the measured connections to 10.96.0.32 are UDX streams over it (TLS on top),
// as across two NATs that can be punched.
// The `ceiling` phase runs no agent: two bare Node forwarders (bench/forwarder.ts)
// carry the same traffic a → b1, plain and over TLS, as the bound for a
// Node data path on this machine. `libp2p-ceiling` joins the same two hops
// with bare js-libp2p nodes (forwarder.ts --libp2p): the bound for the libp2p
// tunnel.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { bundleForBench } from '../bundle.ts'
import { CONDITIONS, emptyLatency, latencyReport, measureLatency } from './latency.ts'
import type { Condition, LatencyByCondition } from './latency.ts'
import { AGENT_NODE_FLAGS, MALLOC_ENV } from '../../src/bin/node-flags.ts'
import { serviceYaml } from '../../test/helpers/services.ts'
import { bridgeTopology, cpuGroup, cpuSeconds, ensureIperf, exec, iperf, killAll, median, requireRoot, takeBenchLock, rssMB, run, sh, waitFor } from '../netns.ts'
import type { Proc } from '../netns.ts'

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    out: { type: 'string' },
    'no-psk': { type: 'boolean' },
    'no-native': { type: 'boolean' },
    phases: { type: 'string', default: 'libp2p,datapath,punched,ceiling,libp2p-ceiling' },
    streams: { type: 'string', default: '50' },
    'sim-nodes': { type: 'string', default: '200' },
    'sim-rate': { type: 'string', default: '0.25' },
    'sim-seconds': { type: 'string', default: '5' },
    // 0 leaves the latency part out.
    'latency-seconds': { type: 'string', default: '5' },
    // Latency only, on agents as they start (no transfer has run through them).
    'no-throughput': { type: 'boolean' },
    rate: { type: 'string', default: '200' },
    churn: { type: 'string', default: '100' },
    conditions: { type: 'string', default: CONDITIONS.join(',') },
    // Millicores: each node's agent (or bare forwarders) runs in a cgroup with the weight Kubernetes gives that CPU
    // request, and the busy-loopers in one with the weight of a pod requesting every core (cgroup v1 cpu.shares).
    // The lab's nodes share the machine's cores, so this only approximates one node's contention.
    'agent-cpu-request': { type: 'string' },
    // Seconds between the agents' start and the first measurement; with --keep-startup-pages, agents that
    // keep the start's pages (commonConfig.releaseStartupPages: false), to weigh the release's cost.
    'settle-seconds': { type: 'string', default: '1.5' },
    'keep-startup-pages': { type: 'boolean' }
  }
})
/** Each node's agent (or forwarders) in a cgroup of its own with that request's weight, as each node's kubelet would place it. */
const agentCgroup = (node: string): string | undefined => opt['agent-cpu-request'] !== undefined ? cpuGroup(`edgemesh-bench-${node}`, Number(opt['agent-cpu-request'])) : undefined
const HOG_CGROUP = opt['agent-cpu-request'] !== undefined ? cpuGroup('edgemesh-bench-hogs', 1000 * cpus().length) : undefined
const ROUNDS = Number(opt.rounds)
const SECONDS = Number(opt.seconds)
const THROUGHPUT = opt['no-throughput'] !== true
const STREAMS = Number(opt.streams)
const SIM_NODES = Number(opt['sim-nodes'])
const SIM_RATE_MB = Number(opt['sim-rate'])
const SIM_SECONDS = Number(opt['sim-seconds'])
const LATENCY = { seconds: Number(opt['latency-seconds']), rate: Number(opt.rate), churn: Number(opt.churn) }
const LATENCY_CONDITIONS = (opt.conditions as string).split(',') as Condition[]
for (const c of LATENCY_CONDITIONS) if (!CONDITIONS.includes(c)) throw new Error(`--conditions: unknown condition ${c} (one of ${CONDITIONS.join(', ')})`)
const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..', '..')
/** The load client of bench/proxy: rr, rate and churn. */
const CLIENT = join(root, 'bench/proxy/client.ts')
const NODES = { a: '10.88.0.1', r: '10.88.0.2', b1: '10.88.0.3', b2: '10.88.0.4' } as const
type Node = keyof typeof NODES
const NS = (n: Node | 'br'): string => `emt-${n}`

requireRoot('bench:tunnel')
takeBenchLock('bench:tunnel')

let teardown = (): void => {}

/** The namespaces; b2 is reached only through the relay. */
function setup (): void {
  teardown = bridgeTopology('emt', NODES, NODES.r, { from: 'a', to: 'b2' })
}

/** a's cut-off from b2: everything (a NAT that cannot be punched), or TCP only (UDP punching works). */
function cutOff (what: 'all' | 'tcp'): void {
  sh(['ip', 'netns', 'exec', NS('a'), 'nft', '-f', '-'], `flush chain inet emt out\nadd rule inet emt out ip daddr ${NODES.b2} ${what === 'tcp' ? 'meta l4proto tcp ' : ''}drop\n`)
}

/** The punched phase: a connection to b2 (through r) starts the punch; waits until a's status shows the path. */
async function awaitPunchedPath (): Promise<void> {
  exec(NS('a'), ['iperf3', '-c', AGENT_TARGET.relayed.host, '-p', '5201', '-t', '1'])
  const script = "fetch('http://127.0.0.1:10551/status').then(r => r.json()).then(s => process.stdout.write(JSON.stringify(s.nat?.peers ?? [])))"
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    const peers = JSON.parse(exec(NS('a'), [process.execPath, '-e', script]) || '[]') as Array<{ nodeName: string, path: string, reason?: string }>
    const b2 = peers.find(p => p.nodeName === 'b2')
    if (b2?.path === 'direct') break
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  // The pool still holds connections made through r before the punch: use them up, so the rounds measure the punched path.
  const peersScript = "fetch('http://127.0.0.1:10551/status').then(r => r.json()).then(s => process.stdout.write(JSON.stringify(s.tunnel.peers)))"
  while (Date.now() < deadline) {
    exec(NS('a'), ['iperf3', '-c', AGENT_TARGET.relayed.host, '-p', '5201', '-t', '1'])
    const peers = JSON.parse(exec(NS('a'), [process.execPath, '-e', peersScript]) || '[]') as Array<{ nodeName?: string, dataPath?: string }>
    if (peers.find(p => p.nodeName === 'b2')?.dataPath === 'punched') return
  }
  throw new Error('no punched path from a to b2 within 20 s')
}

function services (): string {
  const svc = (name: string, clusterIP: string, ip: string, nodeName: string): string => serviceYaml({
    name,
    namespace: 'bench',
    clusterIP,
    ports: [{ name: 'iperf', port: 5201 }, { name: 'echo', port: 7000 }],
    endpoints: [{ ip, nodeName }]
  })
  return svc('direct', '10.96.0.31', NODES.b1, 'b1') + svc('relayed', '10.96.0.32', NODES.b2, 'b2')
}

type Path = 'raw' | 'direct' | 'relayed'
type Phase = 'libp2p' | 'datapath' | 'punched' | 'ceiling' | 'libp2p-ceiling'
interface Target { host: string, iperf: number, echo: number }
const AGENT_TARGET: Record<Path, Target> = {
  raw: { host: NODES.b1, iperf: 5201, echo: 7000 },
  direct: { host: '10.96.0.31', iperf: 5201, echo: 7000 },
  relayed: { host: '10.96.0.32', iperf: 5201, echo: 7000 }
}
// The ceiling phase runs bench/forwarder.ts instead of agents: two Node
// hops a → b1, plain ("direct" column) and TLS ("relayed" column).
const CEILING_TARGET: Record<Path, Target> = {
  raw: AGENT_TARGET.raw,
  direct: { host: '127.0.0.1', iperf: 15201, echo: 17000 },
  relayed: { host: '127.0.0.1', iperf: 25201, echo: 27000 }
}
// The libp2p-ceiling phase: the same two hops joined by bare js-libp2p (forwarder.ts --libp2p), "direct" only.
const LIBP2P_CEILING_TARGET: Record<Path, Target> = { ...CEILING_TARGET, direct: { host: '127.0.0.1', iperf: 35201, echo: 37000 } }
interface Sample { mbps: number, p50: number, p99: number, relayCpu: number, relayRss: number, endsCpu: number }

/** The processes at either end of a path: the client node's and the endpoint node's (agent or forwarder). */
function endsOf (phase: Phase, p: Path): Proc[] {
  const names = p === 'raw' ? [] : phase === 'libp2p-ceiling' ? ['ceiling-1', 'ceiling-0'] : phase === 'ceiling' ? (p === 'direct' ? ['ceiling-2', 'ceiling-0'] : ['ceiling-3', 'ceiling-1']) : ['a', p === 'direct' ? 'b1' : 'b2']
  return names.map(n => agentsByName.get(n) as Proc)
}
const cpuOf = (procs: Proc[]): number => procs.reduce((sum, p) => sum + cpuSeconds(p.pid as number), 0)

const agentsByName = new Map<string, Proc>()

async function startAgents (dir: string, entry: string, phase: Phase): Promise<string> {
  let pnet = 'off'
  for (const n of ['r', 'b1', 'b2', 'a'] as const) {
    const cfg = join(dir, `${n}-${phase}.yaml`)
    writeFileSync(cfg, [
      'kubeAPIConfig:', `  standaloneFile: ${join(dir, 'services.yaml')}`,
      'commonConfig:', `  stateDir: ${join(dir, n)}`, `  releaseStartupPages: ${String(opt['keep-startup-pages'] !== true)}`,
      'modules:',
      '  edgeDNS: {enable: false}',
      `  edgeProxy: {enable: ${String(n === 'a')}}`,
      '  edgeTunnel:',
      '    enable: true',
      `    psk: {enable: ${String(opt['no-psk'] !== true)}, path: ${join(dir, 'psk')}}`,
      `    dataPath: {enable: ${String(phase === 'datapath' || phase === 'punched')}, holePunch: {enable: ${String(phase === 'punched')}}}`,
      `    relayNodes: [{nodeName: r, advertiseAddress: [${NODES.r}]}, {nodeName: b1, advertiseAddress: [${NODES.b1}]}]`,
      ''
    ].join('\n'))
    const extra = [
      // As the image runs the agent (src/bin/node-flags.ts).
      ...AGENT_NODE_FLAGS,
      ...((process.env.BENCH_PROFILE_NODES ?? 'a').split(',').includes(n) && process.env.BENCH_PROFILE_DIR !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : []),
      // Node flags for every agent, e.g. BENCH_AGENT_FLAGS=--no-optimize-for-size to compare heap settings.
      ...(process.env.BENCH_AGENT_FLAGS ?? '').split(' ').filter(f => f !== '')
    ]
    const p = run(NS(n), [process.execPath, ...extra, entry, 'agent', '--config-file', cfg], { ...MALLOC_ENV, NODE_NAME: n, NAMESPACE: 'kubeedge' }, { cpuCgroup: agentCgroup(n) })
    pnet = (await waitFor(p, /"pnet":"(\w+)"[^\n]*"msg":"tunnel listening"/, 30_000))[1] ?? pnet
    await waitFor(p, /"msg":"running"/, 30_000)
    agentsByName.set(n, p)
  }
  if (phase === 'datapath' || phase === 'punched') await waitFor(agentsByName.get('b2') as Proc, /"msg":"data path relays"/, 30_000)
  await new Promise(resolve => setTimeout(resolve, Number(opt['settle-seconds']) * 1000))
  const settled = [...agentsByName].map(([n, p]) => `${n} ${rssMB(p.pid as number).toFixed(1)} MB${p.out().includes('"msg":"startup pages released"') ? ' (start\'s pages released)' : ''}`)
  process.stderr.write(`[bench:tunnel] ${phase}: agents' RSS after settling: ${settled.join(', ')}\n`)
  return pnet
}

/** The two-hop ceiling: minimal Node forwarders, plain and TLS, a → b1. */
async function startCeiling (): Promise<void> {
  await startForwarders([
    ['b1', ['exit', '--map', '16201=127.0.0.1:5201', '--map', '17001=127.0.0.1:7000']],
    ['b1', ['exit', '--tls', '--map', '26201=127.0.0.1:5201', '--map', '27001=127.0.0.1:7000']],
    ['a', ['entry', '--map', `15201=${NODES.b1}:16201`, '--map', `17000=${NODES.b1}:17001`]],
    ['a', ['entry', '--tls', '--map', `25201=${NODES.b1}:26201`, '--map', `27000=${NODES.b1}:27001`]]
  ], 10_000)
}

/** The same two hops over bare js-libp2p: the agent's stack, none of its logic. */
async function startLibp2pCeiling (): Promise<void> {
  await startForwarders([
    ['b1', ['exit', '--libp2p', '--map', '36201=127.0.0.1:5201', '--map', '37001=127.0.0.1:7000']],
    ['a', ['entry', '--libp2p', '--map', `35201=${NODES.b1}:36201`, '--map', `37000=${NODES.b1}:37001`]]
  ], 20_000)
}

/** Starts bench/forwarder.ts with each (node, arguments), waits until both its ports listen, registers them as ceiling-0, ceiling-1, … */
async function startForwarders (specs: Array<[Node, string[]]>, timeoutMs: number): Promise<void> {
  const script = join(here, '..', 'forwarder.ts')
  const procs = specs.map(([node, args]) => run(NS(node), [process.execPath, script, ...args], {}, { cpuCgroup: agentCgroup(node) }))
  for (const p of procs) await waitFor(p, /listening on \d+\n.*listening on \d+/s, timeoutMs)
  procs.forEach((p, i) => agentsByName.set(`ceiling-${i}`, p))
}

async function stopAgents (): Promise<void> {
  const procs = [...agentsByName.values()]
  for (const p of procs) p.kill('SIGTERM')
  await Promise.all(procs.map(async p => { if (p.exitCode === null) await new Promise(resolve => p.once('exit', resolve)) }))
  agentsByName.clear()
}

/**
 * Runs argv in a namespace to its end while sampling the RSS of process
 * `pid` every 100 ms (spawned, not exec'd, so the sampler keeps running).
 */
async function runWatchingRss (pid: number, ns: string, argv: string[]): Promise<{ proc: Proc, peakRss: number }> {
  let peakRss = rssMB(pid)
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, rssMB(pid)) }, 100)
  const proc = run(ns, argv)
  await new Promise(resolve => proc.once('exit', resolve))
  clearInterval(sampler)
  return { proc, peakRss }
}

/** iperf3 with `streams` parallel connections while the relay's RSS is sampled: MB/s, peak RSS MB, CPU-s. */
async function parallelLoad (target: string, streams: number, seconds: number): Promise<{ mbps: number, peakRss: number, cpu: number }> {
  const relay = agentsByName.get('r') as Proc
  const pid = relay.pid as number
  const cpu0 = cpuSeconds(pid)
  const { proc: client, peakRss } = await runWatchingRss(pid, NS('a'), ['iperf3', '-c', target, '-p', '5201', '-t', String(seconds), '-P', String(streams), '-J'])
  const json = client.out().slice(client.out().indexOf('{'))
  let r: { end?: { sum_received?: { bits_per_second: number } }, error?: string } = {}
  try { r = JSON.parse(json) } catch { r = { error: json.slice(0, 200) } }
  // iperf3 gives up when streams stall (the libp2p relay under 50 streams): that is a result too.
  if (r.end?.sum_received === undefined) console.error(`iperf3 -P ${streams} failed: ${r.error ?? 'no result'}`)
  return { mbps: (r.end?.sum_received?.bits_per_second ?? NaN) / 8 / 1e6, peakRss, cpu: cpuSeconds(pid) - cpu0 }
}

async function main (): Promise<void> {
  ensureIperf()
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-bench-tunnel-'))
  const entry = await bundleForBench(join(root, 'src/bin/edgemesh.ts'), { native: opt['no-native'] !== true })
  let pnet = 'off'
  setup()
  try {
    writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster')
    writeFileSync(join(dir, 'services.yaml'), services())
    for (const n of ['b1', 'b2'] as const) {
      run(NS(n), ['iperf3', '-s', '-p', '5201'])
      run(NS(n), [process.execPath, join(root, 'test/lab/workloads/echo-server.ts'), 'tcp', '--port', '7000'])
    }
    const phases = (opt.phases as string).split(',') as Phase[]
    const samples: Record<Phase, Record<Path, Sample[]>> = { libp2p: { raw: [], direct: [], relayed: [] }, datapath: { raw: [], direct: [], relayed: [] }, punched: { raw: [], direct: [], relayed: [] }, ceiling: { raw: [], direct: [], relayed: [] }, 'libp2p-ceiling': { raw: [], direct: [], relayed: [] } }
    const loads: Partial<Record<Phase, { mbps: number, peakRss: number, cpu: number }>> = {}
    let sim: { nodes: number, parked: number, relayRss: number, relayRssIdle: number, mbps: number, p50: number, p99: number, relayCpu: number } | undefined
    const latency = new Map<string, LatencyByCondition>()
    let poolTakes = ''
    for (const phase of phases) {
      if (phase === 'ceiling') await startCeiling()
      else if (phase === 'libp2p-ceiling') await startLibp2pCeiling()
      else {
        cutOff(phase === 'punched' ? 'tcp' : 'all')
        pnet = await startAgents(dir, entry, phase)
        if (phase === 'punched') await awaitPunchedPath()
      }
      const relay = agentsByName.get('r') ?? agentsByName.get('ceiling-0') as Proc
      const targets = phase === 'ceiling' ? CEILING_TARGET : phase === 'libp2p-ceiling' ? LIBP2P_CEILING_TARGET : AGENT_TARGET
      const paths: Path[] = phase === 'libp2p-ceiling' ? ['raw', 'direct'] : phase === 'punched' ? ['raw', 'relayed'] : ['raw', 'direct', 'relayed']
      for (let round = 0; round < (THROUGHPUT ? ROUNDS : 0); round++) {
        for (const p of paths.map((_, i) => paths[(i + round) % paths.length] as Path)) {
          const t = targets[p]
          const cpu0 = cpuSeconds(relay.pid as number)
          const ends0 = cpuOf(endsOf(phase, p))
          const mbps = iperf(NS('a'), t.host, t.iperf, SECONDS)
          const relayCpu = cpuSeconds(relay.pid as number) - cpu0
          const endsCpu = cpuOf(endsOf(phase, p)) - ends0
          const relayRss = rssMB(relay.pid as number)
          const rr = JSON.parse(exec(NS('a'), [process.execPath, CLIENT, 'rr', `${t.host}:${t.echo}`, '2'])) as { p50: number, p99: number }
          samples[phase][p].push({ mbps, p50: rr.p50, p99: rr.p99, relayCpu, relayRss, endsCpu })
          console.error(`${phase} round ${round + 1} ${p}: ${mbps.toFixed(0)} MB/s, rr p50 ${rr.p50.toFixed(0)} µs, ends ${endsCpu.toFixed(2)} CPU-s, relay ${relayCpu.toFixed(2)} CPU-s, ${relayRss.toFixed(0)} MB`)
        }
      }
      if (LATENCY.seconds > 0 && (phase === 'datapath' || phase === 'ceiling' || phase === 'punched')) {
        // Raw TCP once: in the ceiling phase when there is one.
        const paths: Path[] = phase === 'punched' ? ['relayed'] : phase === 'ceiling' || !phases.includes('ceiling') ? ['raw', 'direct', 'relayed'] : ['direct', 'relayed']
        for (let round = 0; round < ROUNDS; round++) {
          for (const c of LATENCY_CONDITIONS) {
            for (const p of paths.map((_, i) => paths[(i + round) % paths.length] as Path)) {
              const sample = await measureLatency(targets[p], c, { ns: NS('a'), client: CLIENT, hogCgroup: HOG_CGROUP, ...LATENCY })
              const key = p === 'raw' ? 'raw' : `${phase}/${p}`
              latency.set(key, latency.get(key) ?? emptyLatency())
              latency.get(key)?.[c].push(sample)
              console.error(`${phase} latency round ${round + 1} ${c} ${p}: echo p50 ${sample.echo.p50.toFixed(0)} p99 ${sample.echo.p99.toFixed(0)} p999 ${sample.echo.p999.toFixed(0)} µs; new connection p50 ${sample.open.p50.toFixed(0)} p99 ${sample.open.p99.toFixed(0)} µs`)
            }
          }
        }
      }
      if (LATENCY.seconds > 0 && phase === 'datapath') poolTakes = dataPathPoolTakes()
      if (STREAMS > 0 && (phase === 'libp2p' || phase === 'datapath')) loads[phase] = await parallelLoad(AGENT_TARGET.relayed.host, STREAMS, SECONDS)
      if (STREAMS > 0 && (phase === 'libp2p' || phase === 'datapath')) console.error(`${phase} ${STREAMS} streams relayed: ${loads[phase]?.mbps.toFixed(0)} MB/s, relay peak ${loads[phase]?.peakRss.toFixed(0)} MB`)
      if (phase === 'datapath' && SIM_NODES > 0) sim = await simulateNodes(dir, relay)
      await stopAgents()
    }
    const all = (p: Path): Sample[] => phases.flatMap(ph => samples[ph][p])
    const raw = median(all('raw').map(s => s.mbps))
    const rawP50 = median(all('raw').map(s => s.p50))
    const med = (ph: Phase, p: Path, k: keyof Sample): number => median(samples[ph][p].map(s => s[k]))
    const endsPerGb = (ph: Phase, p: Path): string => median(samples[ph][p].map(s => s.endsCpu / (s.mbps * SECONDS / 1000))).toFixed(1)
    const plainRow = (label: string, p: Path, ph: Phase = 'ceiling'): string => `| ${label} | ${med(ph, p, 'mbps').toFixed(0)} | ${(100 * med(ph, p, 'mbps') / raw).toFixed(0)} % | ${med(ph, p, 'p50').toFixed(0)} (+${(med(ph, p, 'p50') - rawP50).toFixed(0)}) | ${med(ph, p, 'p99').toFixed(0)} | ${endsPerGb(ph, p)} | – |`
    const row = (label: string, ph: Phase, p: Path): string => {
      const gb = med(ph, p, 'mbps') * SECONDS / 1000
      const load = loads[ph]
      return `| ${label} | ${med(ph, p, 'mbps').toFixed(0)} | ${(100 * med(ph, p, 'mbps') / raw).toFixed(0)} % | ${med(ph, p, 'p50').toFixed(0)} (+${(med(ph, p, 'p50') - rawP50).toFixed(0)}) | ${med(ph, p, 'p99').toFixed(0)} | ${endsPerGb(ph, p)} | ${p === 'relayed' ? `${(med(ph, p, 'relayCpu') / gb).toFixed(1)} CPU-s/GB, ${med(ph, p, 'relayRss').toFixed(0)} MB; ${STREAMS} streams: ${Number.isNaN(load?.mbps) ? 'iperf3 failed (streams stalled)' : `${load?.mbps.toFixed(0) ?? '?'} MB/s`}, peak ${load?.peakRss.toFixed(0) ?? '?'} MB, ${load !== undefined ? (load.cpu / (load.mbps * SECONDS / 1000)).toFixed(1) : '?'} CPU-s/GB` : '–'} |`
    }
    const rows = [`| raw TCP (a → b1) | ${raw.toFixed(0)} | 100 % | ${rawP50.toFixed(0)} | ${median(all('raw').map(s => s.p99)).toFixed(0)} | – | – |`]
    if (phases.includes('libp2p')) rows.push(row('libp2p tunnel, direct', 'libp2p', 'direct'), row('libp2p tunnel, relayed', 'libp2p', 'relayed'))
    if (phases.includes('datapath')) rows.push(row('TLS data path, direct', 'datapath', 'direct'), row('TLS data path, relay-spliced', 'datapath', 'relayed'))
    if (phases.includes('punched')) rows.push(row('TLS data path over a punched UDP path (UDX streams)', 'punched', 'relayed'))
    if (phases.includes('ceiling')) rows.push(plainRow('ceiling: two bare Node forwarders a → b1, plain', 'direct'), plainRow('ceiling: two bare Node forwarders a → b1, TLS 1.3 PSK', 'relayed'))
    if (phases.includes('libp2p-ceiling')) rows.push(plainRow('ceiling: two bare js-libp2p nodes a → b1 (pnet, Noise, Yamux)', 'direct', 'libp2p-ceiling'))
    const report = [
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; ${ROUNDS} rounds per phase, medians; ${THROUGHPUT ? `iperf3 ${SECONDS} s single stream through the agent's userspace proxy` : 'no transfers (--no-throughput)'} (${opt['no-psk'] === true ? 'PSK off' : `PSK on, pnet XSalsa20: ${pnet === 'native' ? 'libsodium (sodium-native)' : 'xsalsa20 WebAssembly'}`}); RR = 64-byte request/response, p50 (+ added over raw TCP). b2 is unreachable from a except through the relay r.`,
      ...(THROUGHPUT
        ? ['', '| path | throughput MB/s | of raw TCP | RR p50 µs | RR p99 µs | client + endpoint node CPU-s/GB | relay under load |', '|---|---|---|---|---|---|---|', ...rows]
        : []),
      ...(sim !== undefined
        ? ['', `Relay with ${sim.nodes} simulated edge nodes (data path, ${sim.parked} parked connections; one relayed connection per node at ${SIM_RATE_MB} MB/s each): ${sim.mbps.toFixed(0)} MB/s total, relay RSS ${sim.relayRssIdle.toFixed(0)} MB parked idle → ${sim.relayRss.toFixed(0)} MB peak under load, ${sim.relayCpu.toFixed(1)} CPU-s/GB; RR through the relay meanwhile p50 ${sim.p50.toFixed(0)} µs, p99 ${sim.p99.toFixed(0)} µs.`]
        : []),
      ...(latency.size > 0
        ? ['', latencyReport([
            ['raw TCP (a → b1)', 'raw'],
            ['two bare Node forwarders a → b1, plain', 'ceiling/direct'],
            ['two bare Node forwarders a → b1, TLS 1.3 PSK', 'ceiling/relayed'],
            ['TLS data path, direct', 'datapath/direct'],
            ['TLS data path, relay-spliced', 'datapath/relayed'],
            ['TLS data path over a punched UDP path', 'punched/relayed']
          ].flatMap(([label, key]) => latency.has(key as string) ? [{ label: label as string, samples: latency.get(key as string) as LatencyByCondition, judged: !(key as string).startsWith('ceiling') && key !== 'raw' }] : []),
          { raw: 'raw TCP (a → b1)', tlsPair: latency.has('ceiling/relayed') ? 'two bare Node forwarders a → b1, TLS 1.3 PSK' : undefined },
          { ...LATENCY, rounds: ROUNDS }), ...(poolTakes !== '' ? ['', `Client agent's data path pool over the latency part: ${poolTakes}.`] : [])]
        : [])
    ].join('\n')
    console.log(report)
    if (opt.out !== undefined) writeFileSync(opt.out, report + '\n')
  } finally {
    await stopAgents().catch(() => {})
    killAll()
    teardown()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** How many of agent a's data path dials found a handshaken connection ready (its status server's metrics). */
function dataPathPoolTakes (): string {
  const script = "fetch('http://127.0.0.1:10551/metrics').then(r => r.text()).then(t => process.stdout.write(t))"
  const text = exec(NS('a'), [process.execPath, '-e', script])
  const count = (result: string): number => Number(new RegExp(`^edgemesh_datapath_pool_takes_total\\{result="${result}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0)
  const hit = count('hit')
  const miss = count('miss')
  const reused = Number(/^edgemesh_datapath_connections_reused_total (\d+)/m.exec(text)?.[1] ?? 0)
  return `${hit} dials took a ready connection, ${miss} handshook first (${(100 * hit / Math.max(1, hit + miss)).toFixed(0)} % hits); ${reused} connections came back to the pool after their proxied connection ended`
}

/**
 * 200 edge nodes behind the relay: one process in b2 runs a DataPath per
 * simulated node, each parked on r; a driver in a joins each through r and
 * streams at a fixed rate while it measures request/response latency.
 */
async function simulateNodes (dir: string, relay: Proc): Promise<{ nodes: number, parked: number, relayRss: number, relayRssIdle: number, mbps: number, p50: number, p99: number, relayCpu: number }> {
  const sim = join(here, 'sim-nodes.ts')
  const common = ['--psk', join(dir, 'psk'), '--relay', `${NODES.r}:20008`, '--nodes', String(SIM_NODES)]
  const nodes = run(NS('b2'), [process.execPath, sim, 'park', ...common, '--host', NODES.b2])
  await waitFor(nodes, /"parked":(\d+)/, 60_000)
  await new Promise(resolve => setTimeout(resolve, 1000))
  const relayRssIdle = rssMB(relay.pid as number)
  const cpu0 = cpuSeconds(relay.pid as number)
  const { proc: driver, peakRss: peak } = await runWatchingRss(relay.pid as number, NS('a'),
    [process.execPath, sim, 'drive', ...common, '--target', `${NODES.b2}:7000`, '--rate', String(SIM_RATE_MB), '--seconds', String(SIM_SECONDS)])
  const out = /\{"mbps".*\}/.exec(driver.out())?.[0] ?? `{"error": ${JSON.stringify(driver.out().slice(-2000))}}`
  const parked = Number(/"parked":(\d+)/.exec(nodes.out())?.[1] ?? 0)
  nodes.kill('SIGTERM')
  const r = JSON.parse(out) as { mbps: number, p50: number, p99: number }
  const gb = r.mbps * SIM_SECONDS / 1000
  return { nodes: SIM_NODES, parked, relayRss: peak, relayRssIdle, mbps: r.mbps, p50: r.p50, p99: r.p99, relayCpu: (cpuSeconds(relay.pid as number) - cpu0) / gb }
}

await main()
