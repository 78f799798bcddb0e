// Proxy bench: direct TCP vs the kernel DNAT path vs the userspace path vs a
// bare Node forwarder (the ceiling of any userspace hop here), in one run,
// rotating order, medians; plus the memory of 1,000 open proxied
// connections and the time to program 10k services and one change
// (program.ts).
//
//   sudo npm run bench:proxy [-- --rounds 5 --seconds 3 --services 10000 --out /tmp/proxy.md]   (results go into docs/benchmarks.md)
//
// Layout: namespace emp-c (client + agent, bundled as in production) and
// emp-s (iperf3 server, TCP echo) joined by a veth, 10.77.0.1 ↔ 10.77.0.2.
// ClusterIP 10.96.0.10 is the kernel path (round robin, endpoint on this node);
// 10.96.0.20 is the userspace path (a DestinationRule hashing the source IP,
// which nftables cannot express); 10.96.0.99 is DNATed to bench/forwarder.ts.
// Needs root (namespaces, nftables; apt-get
// for iperf3 when missing).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { bundleForBench } from '../bundle.ts'
import { AGENT_NODE_FLAGS, MALLOC_ENV } from '../../src/bin/node-flags.ts'
import { serviceYaml } from '../../test/helpers/services.ts'
import { deleteNetns, ensureIperf, exec, iperf, killAll, median, requireRoot, takeBenchLock, rssMB, run, sh, waitFor } from '../netns.ts'

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

requireRoot('bench:proxy')
takeBenchLock('bench:proxy')

function teardown (): void {
  for (const ns of [C, S]) deleteNetns(ns)
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

function servicesYaml (): string {
  const svc = (name: string, clusterIP: string): string => serviceYaml({
    name,
    namespace: 'bench',
    clusterIP,
    ports: [{ name: 'iperf', port: 5201 }, { name: 'echo', port: 7000 }],
    endpoints: [{ ip: '10.77.0.2', nodeName: NODE }]
  })
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

type Path = 'direct' | 'kernel' | 'userspace' | 'bare forwarder'
// 'bare forwarder': bench/forwarder.ts in the client namespace, reached through
// its own DNAT as the agent's listeners are: the ceiling of a userspace hop here.
const TARGET: Record<Path, string> = { direct: '10.77.0.2', kernel: '10.96.0.10', userspace: '10.96.0.20', 'bare forwarder': '10.96.0.99' }
interface Sample { mbps: number, p50: number, p99: number, connPerSec: number, connP50: number }

function measure (path: Path): Sample {
  const ip = TARGET[path]
  const mbps = iperf(C, ip, 5201, SECONDS)
  const client = join(here, 'client.ts')
  const rr = JSON.parse(exec(C, [process.execPath, client, 'rr', `${ip}:7000`, '2'])) as { p50: number, p99: number }
  const conn = JSON.parse(exec(C, [process.execPath, client, 'conn', `${ip}:7000`, '2', '4'])) as { perSecond: number, p50: number, errors: number }
  if (conn.errors > 0) console.error(`${path}: ${conn.errors} connection errors`)
  return { mbps, p50: rr.p50, p99: rr.p99, connPerSec: conn.perSecond, connP50: conn.p50 }
}

async function main (): Promise<void> {
  ensureIperf()
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-bench-proxy-'))
  const entry = await bundleForBench(join(root, 'src/bin/edgemesh.ts'))
  const env = { NODE_NAME: NODE, NAMESPACE: 'kubeedge' }
  setup()
  try {
    run(S, ['iperf3', '-s', '-p', '5201'])
    run(S, [process.execPath, join(root, 'test/lab/workloads/echo-server.ts'), 'tcp', '--port', '7000'])
    const services = join(dir, 'services.yaml')
    writeFileSync(services, servicesYaml())
    // Node flags for the agent, e.g. BENCH_AGENT_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile it.
    const flags = (process.env.BENCH_AGENT_FLAGS ?? '').split(' ').filter(f => f !== '')
    // The Node flags as the image gives them (src/bin/node-flags.ts), then the bench's own.
    const agent = run(C, [process.execPath, ...AGENT_NODE_FLAGS, ...flags, entry, 'agent', '--config-file', agentConfig(dir, services)], { ...MALLOC_ENV, ...env })
    await waitFor(agent, /"msg":"proxy rules installed"/, 20_000)
    await new Promise(resolve => setTimeout(resolve, 500))

    const forwarder = run(C, [process.execPath, join(here, '..', 'forwarder.ts'), 'entry', '--map', '15201=10.77.0.2:5201', '--map', '17000=10.77.0.2:7000'])
    await waitFor(forwarder, /listening on 15201\n.*listening on 17000|listening on 17000\n.*listening on 15201/s, 10_000)
    sh(['ip', 'netns', 'exec', C, 'nft', '-f', '-'], [
      'table ip bench {',
      '  chain out {',
      '    type nat hook output priority -120;',
      '    ip daddr 10.96.0.99 tcp dport 5201 dnat to 10.77.0.1:15201',
      '    ip daddr 10.96.0.99 tcp dport 7000 dnat to 10.77.0.1:17000',
      '  }',
      '}', ''
    ].join('\n'))

    const paths: Path[] = ['direct', 'kernel', 'userspace', 'bare forwarder']
    const samples: Record<Path, Sample[]> = { direct: [], kernel: [], userspace: [], 'bare forwarder': [] }
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
      row('direct'), row('kernel'), row('userspace'), row('bare forwarder'),
      '',
      `- 1,000 idle connections through the userspace path: agent RSS ${before.toFixed(1)} → ${held.toFixed(1)} MB (+${(held - before).toFixed(1)} MB).`,
      `- ${count} services (half kernel path, half userspace listeners), proxy alone fed by an in-memory map: full programming ${prog.fullMs.toFixed(0)} ms (plan + ${count / 2} listeners + one nft transaction); one changed service p50 ${prog.changeP50.toFixed(1)} ms, max ${prog.changeMax.toFixed(1)} ms (20 changes); RSS ${prog.rssMB.toFixed(0)} MB, of which the proxy's plan and listeners ${prog.rssOverViewMB.toFixed(0)} MB.`
    ].join('\n')
    console.log(report)
    if (opt.out !== undefined) writeFileSync(opt.out, report + '\n')
  } finally {
    killAll()
    teardown()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
