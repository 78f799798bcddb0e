// Proxy bench: direct TCP vs the kernel DNAT path vs the userspace path, in
// one run, rotating order, medians; plus the memory of 1,000 open proxied
// connections and the time to program 10k services and one change
// (program.ts).
//
//   sudo npm run bench:proxy [-- --rounds 5 --seconds 3 --services 10000 --out /tmp/proxy.md]   (results go into docs/benchmarks.md)
//
// Layout: namespace emp-c (client + agent, bundled as in production) and
// emp-s (iperf3 server, TCP echo) joined by a veth, 10.77.0.1 ↔ 10.77.0.2.
// ClusterIP 10.96.0.10 is the kernel path (round robin, endpoint on this node);
// 10.96.0.20 is the userspace path (a DestinationRule hashing the source IP,
// which nftables cannot express). Needs root (namespaces, nftables; apt-get
// for iperf3 when missing).
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { bundleForBench } from '../bundle.ts'

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '3' },
    services: { type: 'string', default: '10000' },
    out: { type: 'string' }
  }
})
const ROUNDS = Number(opt.rounds)
const SECONDS = Number(opt.seconds)
const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..', '..')
const C = 'emp-c'
const S = 'emp-s'
const NODE = 'bench-node'

if (process.getuid?.() !== 0) {
  console.error('bench:proxy needs root (network namespaces and nftables)')
  process.exit(2)
}

function sh (argv: string[], input?: string): string {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', input })
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`)
  return r.stdout
}

function ensureIperf (): void {
  if (spawnSync('sh', ['-c', 'command -v iperf3']).status === 0) return
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  if (spawnSync('apt-get', ['install', '-y', '-qq', 'iperf3'], { stdio: 'inherit', env }).status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    sh(['apt-get', 'install', '-y', '-qq', 'iperf3'])
  }
}

function teardown (): void {
  for (const ns of [C, S]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
}

function setup (): void {
  teardown()
  sh(['ip', 'netns', 'add', C])
  sh(['ip', 'netns', 'add', S])
  sh(['ip', 'link', 'add', 'v0', 'netns', C, 'type', 'veth', 'peer', 'v1', 'netns', S])
  for (const [ns, dev, addr] of [[C, 'v0', '10.77.0.1/24'], [S, 'v1', '10.77.0.2/24']] as const) {
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    sh(['ip', '-n', ns, 'addr', 'add', addr, 'dev', dev])
    sh(['ip', '-n', ns, 'link', 'set', dev, 'up'])
  }
  // ClusterIPs need a route before DNAT picks the real destination, as on a real node.
  sh(['ip', '-n', C, 'route', 'add', 'default', 'via', '10.77.0.2'])
  // The connection-rate runs open tens of thousands of connections: without
  // these, TIME_WAIT exhausts the ephemeral ports and every path measures that.
  for (const ns of [C, S]) {
    exec(ns, ['sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65535'])
  }
}

const children: ChildProcess[] = []
function run (ns: string, argv: string[], env: Record<string, string> = {}): ChildProcess & { out: () => string } {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { out += d })
  children.push(child)
  return Object.assign(child, { out: () => out })
}

async function waitFor (child: { out: () => string }, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const m = pattern.exec(child.out())
    if (m !== null) return m
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${String(pattern)}:\n${child.out().slice(-3000)}`)
}

function exec (ns: string, argv: string[]): string {
  return sh(['ip', 'netns', 'exec', ns, ...argv])
}

function servicesYaml (): string {
  const svc = (name: string, ip: string): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: bench}
spec:
  clusterIP: ${ip}
  ports: [{name: iperf, port: 5201, protocol: TCP}, {name: echo, port: 7000, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-1, namespace: bench, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
ports: [{name: iperf, port: 5201, protocol: TCP}, {name: echo, port: 7000, protocol: TCP}]
endpoints:
- {addresses: [10.77.0.2], conditions: {ready: true}, nodeName: ${NODE}}
---
`
  return svc('kernel', '10.96.0.10') + svc('userspace', '10.96.0.20') + `apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: userspace, namespace: bench}
spec:
  host: userspace
  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
`
}

function agentConfig (dir: string, services: string): string {
  const file = join(dir, `agent-${Math.random().toString(36).slice(2)}.yaml`)
  writeFileSync(file, [
    'kubeAPIConfig:', `  standaloneFile: ${services}`,
    'commonConfig:', `  stateDir: ${dir}`, '  logLevel: debug',
    'modules:', '  edgeDNS: {enable: false}', '  edgeProxy: {enable: true}', '  edgeTunnel: {enable: false}', ''
  ].join('\n'))
  return file
}

function rssMB (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? NaN) / 1024
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] as number : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2
}

type Path = 'direct' | 'kernel' | 'userspace'
const TARGET: Record<Path, string> = { direct: '10.77.0.2', kernel: '10.96.0.10', userspace: '10.96.0.20' }
interface Sample { mbps: number, p50: number, p99: number, connPerSec: number, connP50: number }

function measure (path: Path): Sample {
  const ip = TARGET[path]
  const iperf = JSON.parse(exec(C, ['iperf3', '-c', ip, '-p', '5201', '-t', String(SECONDS), '-J'])) as { end: { sum_received: { bits_per_second: number } } }
  const client = join(here, 'client.ts')
  const rr = JSON.parse(exec(C, [process.execPath, client, 'rr', `${ip}:7000`, '2'])) as { p50: number, p99: number }
  const conn = JSON.parse(exec(C, [process.execPath, client, 'conn', `${ip}:7000`, '2', '4'])) as { perSecond: number, p50: number, errors: number }
  if (conn.errors > 0) console.error(`${path}: ${conn.errors} connection errors`)
  return { mbps: iperf.end.sum_received.bits_per_second / 8 / 1e6, p50: rr.p50, p99: rr.p99, connPerSec: conn.perSecond, connP50: conn.p50 }
}

async function main (): Promise<void> {
  ensureIperf()
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-bench-proxy-'))
  const entry = await bundleForBench(join(root, 'src/bin/edgemesh.ts'))
  const env = { NODE_NAME: NODE, NAMESPACE: 'kubeedge' }
  setup()
  try {
    run(S, ['iperf3', '-s', '-p', '5201'])
    run(S, [process.execPath, join(root, 'src/lab/workloads/echo-server.ts'), 'tcp', '--port', '7000'])
    const services = join(dir, 'services.yaml')
    writeFileSync(services, servicesYaml())
    const agent = run(C, [process.execPath, entry, 'agent', '--config-file', agentConfig(dir, services)], env)
    await waitFor(agent, /"msg":"proxy rules installed"/, 20_000)
    await new Promise(resolve => setTimeout(resolve, 500))

    const paths: Path[] = ['direct', 'kernel', 'userspace']
    const samples: Record<Path, Sample[]> = { direct: [], kernel: [], userspace: [] }
    for (let round = 0; round < ROUNDS; round++) {
      const order = paths.map((_, i) => paths[(i + round) % paths.length] as Path)
      for (const p of order) {
        const s = measure(p)
        samples[p].push(s)
        console.error(`round ${round + 1} ${p}: ${s.mbps.toFixed(0)} MB/s, rr p50 ${s.p50.toFixed(1)} µs p99 ${s.p99.toFixed(1)} µs, ${s.connPerSec.toFixed(0)} conn/s`)
      }
    }

    // 1,000 idle proxied connections on the userspace path.
    const before = rssMB(agent.pid as number)
    const hold = run(C, [process.execPath, join(here, 'client.ts'), 'hold', '10.96.0.20:7000', '1000'])
    await waitFor(hold, /"open":1000/, 30_000)
    await new Promise(resolve => setTimeout(resolve, 1000))
    const held = rssMB(agent.pid as number)
    hold.stdin?.end()
    agent.kill('SIGTERM')
    await new Promise(resolve => agent.once('exit', resolve))

    // Programming many services, then single changes: the proxy alone (program.ts) in the client namespace.
    const count = Number(opt.services)
    const prog = JSON.parse(exec(C, [process.execPath, join(here, 'program.ts'), String(count), '20'])) as { fullMs: number, changeP50: number, changeMax: number, rssMB: number, rssOverViewMB: number }

    const med = (p: Path, k: keyof Sample): number => median(samples[p].map(s => s[k]))
    const d = (k: keyof Sample): number => med('direct', k)
    const row = (p: Path): string => {
      const pct = p === 'direct' ? '100 %' : `${(100 * med(p, 'mbps') / d('mbps')).toFixed(0)} %`
      const add = (k: 'p50' | 'p99'): string => p === 'direct' ? '' : ` (+${(med(p, k) - d(k)).toFixed(1)})`
      return `| ${p} | ${med(p, 'mbps').toFixed(0)} | ${pct} | ${med(p, 'p50').toFixed(1)}${add('p50')} | ${med(p, 'p99').toFixed(1)}${add('p99')} | ${med(p, 'connPerSec').toFixed(0)} | ${med(p, 'connP50').toFixed(0)} |`
    }
    const report = [
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; ${ROUNDS} rounds, medians; iperf3 ${SECONDS} s single stream; RR = 64-byte request/response on one connection (Node client and echo server); conn = new connection + 1-byte exchange, 4 in parallel.`,
      '',
      '| path | throughput MB/s | of direct | RR p50 µs (added) | RR p99 µs (added) | new conn/s | new conn p50 µs |',
      '|---|---|---|---|---|---|---|',
      row('direct'), row('kernel'), row('userspace'),
      '',
      `- 1,000 idle connections through the userspace path: agent RSS ${before.toFixed(1)} → ${held.toFixed(1)} MB (+${(held - before).toFixed(1)} MB).`,
      `- ${count} services (half kernel path, half userspace listeners), proxy alone fed by an in-memory map: full programming ${prog.fullMs.toFixed(0)} ms (plan + ${count / 2} listeners + one nft transaction); one changed service p50 ${prog.changeP50.toFixed(1)} ms, max ${prog.changeMax.toFixed(1)} ms (20 changes); RSS ${prog.rssMB.toFixed(0)} MB, of which the proxy's plan and listeners ${prog.rssOverViewMB.toFixed(0)} MB.`
    ].join('\n')
    console.log(report)
    if (opt.out !== undefined) writeFileSync(opt.out, report + '\n')
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
    teardown()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
