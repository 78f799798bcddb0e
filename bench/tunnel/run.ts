// Tunnel bench: raw TCP vs the libp2p tunnel direct vs through a relay, in
// one run, rotating order, medians; relay CPU and RSS under load.
//
//   sudo npm run bench:tunnel [-- --rounds 3 --seconds 3 --no-psk --no-native --out /tmp/tunnel.md]   (results go into docs/benchmarks.md)
//
// --no-native runs pnet's XSalsa20 in the xsalsa20 WebAssembly instead of
// libsodium: the bundle then finds no `sodium-native` next to it, as a
// deployment without the addon would not.
//
// Layout: four namespaces on one bridge (10.88.0.0/24): `a` (client, agent
// with proxy + tunnel), `r` (relay), `b1` (a relay too, so `a` dials it
// directly), `b2` (reached only through `r`). b1 and b2 run an iperf3 server
// and a TCP echo. ClusterIP 10.96.0.31 → endpoint on b1 (direct tunnel),
// 10.96.0.32 → endpoint on b2 (relayed). All bundled agents, PSK on.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { bundleForBench } from '../bundle.ts'
import { cpuSeconds, ensureIperf, exec, iperf, killAll, median, requireRoot, rssMB, run, sh, waitFor } from '../netns.ts'
import type { Proc } from '../netns.ts'

const { values: opt } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '3' }, out: { type: 'string' }, 'no-psk': { type: 'boolean' }, 'no-native': { type: 'boolean' } } })
const ROUNDS = Number(opt.rounds)
const SECONDS = Number(opt.seconds)
const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..', '..')
const NODES = { a: '10.88.0.1', r: '10.88.0.2', b1: '10.88.0.3', b2: '10.88.0.4' } as const
type Node = keyof typeof NODES
const NS = (n: Node | 'br'): string => `emt-${n}`

requireRoot('bench:tunnel')

function teardown (): void {
  for (const n of [...Object.keys(NODES), 'br']) spawnSync('ip', ['netns', 'del', NS(n as Node)], { stdio: 'ignore' })
}

function setup (): void {
  teardown()
  sh(['ip', 'netns', 'add', NS('br')])
  sh(['ip', '-n', NS('br'), 'link', 'add', 'br0', 'type', 'bridge'])
  sh(['ip', '-n', NS('br'), 'link', 'set', 'br0', 'up'])
  for (const [n, ip] of Object.entries(NODES)) {
    const ns = NS(n as Node)
    sh(['ip', 'netns', 'add', ns])
    sh(['ip', 'link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', `p-${n}`, 'netns', NS('br')])
    sh(['ip', '-n', NS('br'), 'link', 'set', `p-${n}`, 'master', 'br0', 'up'])
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    sh(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
    // ClusterIPs need a route before DNAT picks the real destination.
    sh(['ip', '-n', ns, 'route', 'add', 'default', 'via', NODES.r])
  }
}

function services (): string {
  const svc = (name: string, ip: string, epIp: string, node: string): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: bench}
spec: {clusterIP: ${ip}, ports: [{name: iperf, port: 5201, protocol: TCP}, {name: echo, port: 7000, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-1, namespace: bench, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
ports: [{name: iperf, port: 5201, protocol: TCP}, {name: echo, port: 7000, protocol: TCP}]
endpoints:
- {addresses: [${epIp}], conditions: {ready: true}, nodeName: ${node}}
---
`
  return svc('direct', '10.96.0.31', NODES.b1, 'b1') + svc('relayed', '10.96.0.32', NODES.b2, 'b2')
}

type Path = 'raw' | 'direct' | 'relayed'
const TARGET: Record<Path, string> = { raw: NODES.b1, direct: '10.96.0.31', relayed: '10.96.0.32' }
interface Sample { mbps: number, p50: number, p99: number, relayCpu: number, relayRss: number }

const agentsByName = new Map<Node, Proc>()

async function main (): Promise<void> {
  ensureIperf()
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-bench-tunnel-'))
  const entry = await bundleForBench(join(root, 'src/bin/edgemesh.ts'))
  // The native addon loads from a node_modules beside the bundle, as it would be shipped.
  if (opt['no-native'] !== true) symlinkSync(join(root, 'node_modules'), join(dirname(entry), 'node_modules'))
  let pnet = 'off'
  setup()
  try {
    writeFileSync(join(dir, 'psk'), 'JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=')
    writeFileSync(join(dir, 'services.yaml'), services())
    const agents = agentsByName
    for (const n of ['r', 'b1', 'b2', 'a'] as const) {
      const cfg = join(dir, `${n}.yaml`)
      writeFileSync(cfg, [
        'kubeAPIConfig:', `  standaloneFile: ${join(dir, 'services.yaml')}`,
        'commonConfig:', `  stateDir: ${join(dir, n)}`,
        'modules:',
        '  edgeDNS: {enable: false}',
        `  edgeProxy: {enable: ${String(n === 'a')}}`,
        '  edgeTunnel:',
        '    enable: true',
        `    psk: {enable: ${String(opt['no-psk'] !== true)}, path: ${join(dir, 'psk')}}`,
        `    relayNodes: [{nodeName: r, advertiseAddress: [${NODES.r}]}, {nodeName: b1, advertiseAddress: [${NODES.b1}]}]`,
        ''
      ].join('\n'))
      const extra = n === 'a' && process.env.BENCH_PROFILE_DIR !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : []
      const p = run(NS(n), [process.execPath, ...extra, entry, 'agent', '--config-file', cfg], { NODE_NAME: n, NAMESPACE: 'kubeedge' })
      pnet = (await waitFor(p, /"pnet":"(\w+)"[^\n]*"msg":"tunnel listening"/, 30_000))[1] ?? pnet
      await waitFor(p, /"msg":"running"/, 30_000)
      agents.set(n, p)
    }
    for (const n of ['b1', 'b2'] as const) {
      run(NS(n), ['iperf3', '-s', '-p', '5201'])
      run(NS(n), [process.execPath, join(root, 'src/lab/workloads/echo-server.ts'), 'tcp', '--port', '7000'])
    }
    await new Promise(resolve => setTimeout(resolve, 1000))
    const relay = agents.get('r') as Proc
    const samples: Record<Path, Sample[]> = { raw: [], direct: [], relayed: [] }
    const paths: Path[] = ['raw', 'direct', 'relayed']
    for (let round = 0; round < ROUNDS; round++) {
      for (const p of paths.map((_, i) => paths[(i + round) % paths.length] as Path)) {
        const cpu0 = cpuSeconds(relay.pid as number)
        const mbps = iperf(NS('a'), TARGET[p], 5201, SECONDS)
        const relayCpu = cpuSeconds(relay.pid as number) - cpu0
        const relayRss = rssMB(relay.pid as number)
        const rr = JSON.parse(exec(NS('a'), [process.execPath, join(root, 'bench/proxy/client.ts'), 'rr', `${TARGET[p]}:7000`, '2'])) as { p50: number, p99: number }
        samples[p].push({ mbps, p50: rr.p50, p99: rr.p99, relayCpu, relayRss })
        console.error(`round ${round + 1} ${p}: ${mbps.toFixed(0)} MB/s, rr p50 ${rr.p50.toFixed(0)} µs, relay ${relayCpu.toFixed(2)} CPU-s, ${relayRss.toFixed(0)} MB`)
      }
    }
    const med = (p: Path, k: keyof Sample): number => median(samples[p].map(s => s[k]))
    const row = (p: Path): string => {
      const gb = med(p, 'mbps') * SECONDS / 1000
      return `| ${p} | ${med(p, 'mbps').toFixed(0)} | ${(100 * med(p, 'mbps') / med('raw', 'mbps')).toFixed(0)} % | ${med(p, 'p50').toFixed(0)} | ${med(p, 'p99').toFixed(0)} | ${p === 'relayed' ? `${(med(p, 'relayCpu') / gb).toFixed(1)} CPU-s/GB, ${med(p, 'relayRss').toFixed(0)} MB` : '–'} |`
    }
    const report = [
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; ${ROUNDS} rounds, medians; iperf3 ${SECONDS} s single stream through the agent's userspace proxy and the tunnel (${opt['no-psk'] === true ? 'PSK off' : `PSK on, XSalsa20: ${pnet === 'native' ? 'libsodium (sodium-native)' : 'xsalsa20 WebAssembly'}`}); RR = 64-byte request/response.`,
      '',
      '| path | throughput MB/s | of raw TCP | RR p50 µs | RR p99 µs | relay under load |',
      '|---|---|---|---|---|---|',
      row('raw'), row('direct'), row('relayed')
    ].join('\n')
    console.log(report)
    if (opt.out !== undefined) writeFileSync(opt.out, report + '\n')
  } finally {
    for (const n of ['a', 'b1', 'b2', 'r'] as const) agentsByName.get(n)?.kill('SIGTERM')
    await new Promise(resolve => setTimeout(resolve, 1500))
    killAll()
    teardown()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
