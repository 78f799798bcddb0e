// bench/cni: pod-to-pod throughput through the edge CNI (edge_tun0 and a data
// path channel) against the ClusterIP proxy path between the same nodes, in
// one run, in the seed lab with a real kube-apiserver (test/helpers/cni-lab.ts)
// and bundled agents run as the image runs them.
//
//   sudo npm run bench:cni [-- --rounds 3 --seconds 3 --latency-seconds 3 --rate 200 --churn 50 --out /tmp/cni.md]
//
// Paths, each an iperf3 client on edge-a1 (one stream) to an iperf3 server in
// a pod: pod a1 → pod a2 (same LAN: direct) and pod a1 → pod b1 (other site:
// through the relay), and node a1 → a ClusterIP whose endpoint is that same
// pod (the proxy's userspace listener, then the data path). Rounds rotate the
// order; medians. Also the agents' CPU per GB (client node + server node) and
// each agent's RSS at the end. Then latency on the same four paths (bench/
// tunnel's latency part, idle): a 64-byte echo at a fixed rate on one
// connection (p50/p99/p999), and new connections, each one exchange.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, release } from 'node:os'
import { parseArgs } from 'node:util'
import { bundleForBench } from '../bundle.ts'
import { ensureIperf, median, takeBenchLock } from '../netns.ts'
import { fileURLToPath } from 'node:url'
import { measureLatency } from '../tunnel/latency.ts'
import type { LatencySample } from '../tunnel/latency.ts'
import { AGENT_NODE_FLAGS, MALLOC_ENV } from '../../src/bin/node-flags.ts'
import { startCniLab } from '../../test/helpers/cni-lab.ts'
import type { CniNode } from '../../test/helpers/cni-lab.ts'

takeBenchLock('bench:cni')

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    // 0 leaves the latency part out.
    'latency-seconds': { type: 'string', default: '3' },
    rate: { type: 'string', default: '200' },
    churn: { type: 'string', default: '50' },
    out: { type: 'string' }
  }
})
const LATENCY = { seconds: Number(opt['latency-seconds']), rate: Number(opt.rate), churn: Number(opt.churn) }
/** The load client of bench/proxy: rate and churn. */
const CLIENT = fileURLToPath(new URL('../proxy/client.ts', import.meta.url))
const ECHO = fileURLToPath(new URL('../../test/lab/workloads/echo-server.ts', import.meta.url))
const ROUNDS = Number(opt.rounds)
const SECONDS = Number(opt.seconds)
if (process.getuid?.() !== 0) { console.error('bench:cni needs root (network namespaces, TUN devices)'); process.exit(2) }

ensureIperf()
const bundle = await bundleForBench(new URL('../../src/bin/edgemesh.ts', import.meta.url).pathname)
const cni = await startCniLab({
  edgemesh: [process.execPath, ...AGENT_NODE_FLAGS, bundle],
  env: MALLOC_ENV,
  modules: ['  edgeDNS: {enable: false}', '  edgeProxy: {enable: true}']
})
const servers: ChildProcess[] = []
try {
  const podIp = (n: CniNode): string => cni.pods.get(n)?.ip as string
  // A ClusterIP per server pod, its endpoint that pod on its node.
  const clusterIps: Partial<Record<CniNode, string>> = {}
  for (const [node, ip] of [['edge-a2', '10.96.0.50'], ['edge-b1', '10.96.0.51']] as const) {
    const name = `iperf-${node}`
    await cni.cp.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIP: ip, ports: [{ name: 'iperf', port: 5201, targetPort: 5201, protocol: 'TCP' }, { name: 'echo', port: 7000, targetPort: 7000, protocol: 'TCP' }] } })
    await cni.cp.apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [podIp(node)], nodeName: node, conditions: { ready: true } }],
      ports: [{ name: 'iperf', port: 5201, protocol: 'TCP' }, { name: 'echo', port: 7000, protocol: 'TCP' }]
    })
    clusterIps[node] = ip
    servers.push(spawn('ip', ['netns', 'exec', cni.pods.get(node)?.netns as string, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' }))
    servers.push(spawn('ip', ['netns', 'exec', cni.pods.get(node)?.netns as string, process.execPath, ECHO, 'tcp', '--port', '7000'], { stdio: 'ignore' }))
  }
  // Every agent has the services before the first round.
  await new Promise(resolve => setTimeout(resolve, 3000))
  const agentPid = (node: CniNode): number => cni.lab.processes().find(p => p.node === node)?.pid as number
  const cpuSeconds = (node: CniNode): number => {
    const f = readFileSync(`/proc/${agentPid(node)}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(f[11]) + Number(f[12])) / 100
  }
  // Where each path's client runs and what it connects to (the same order as `paths`).
  const podNs = cni.pods.get('edge-a1')?.netns as string
  const nodeNs = cni.lab.netns('edge-a1')
  const latencyTargets = [
    { ns: podNs, host: podIp('edge-a2') },
    { ns: nodeNs, host: clusterIps['edge-a2'] as string },
    { ns: podNs, host: podIp('edge-b1') },
    { ns: nodeNs, host: clusterIps['edge-b1'] as string }
  ]
  const paths: Array<{ name: string, to: CniNode, run: () => Promise<string> }> = [
    { name: 'pod a1 → pod a2 (same LAN, direct)', to: 'edge-a2', run: async () => (await cni.inPod('edge-a1', ['iperf3', '-c', podIp('edge-a2'), '-p', '5201', '-t', String(SECONDS), '-J'])).stdout },
    { name: 'node a1 → ClusterIP → pod a2 (proxy, direct)', to: 'edge-a2', run: async () => (await cni.lab.exec('edge-a1', ['iperf3', '-c', clusterIps['edge-a2'] as string, '-p', '5201', '-t', String(SECONDS), '-J'])).stdout },
    { name: 'pod a1 → pod b1 (other site, relayed)', to: 'edge-b1', run: async () => (await cni.inPod('edge-a1', ['iperf3', '-c', podIp('edge-b1'), '-p', '5201', '-t', String(SECONDS), '-J'])).stdout },
    { name: 'node a1 → ClusterIP → pod b1 (proxy, relayed)', to: 'edge-b1', run: async () => (await cni.lab.exec('edge-a1', ['iperf3', '-c', clusterIps['edge-b1'] as string, '-p', '5201', '-t', String(SECONDS), '-J'])).stdout }
  ]
  // Warm-up: channels and pooled connections exist before anything is timed.
  for (const p of paths) await p.run()
  const results = new Map<string, { mbps: number[], cpuPerGb: number[], packetSizes: Array<[number, number, number]> }>(paths.map(p => [p.name, { mbps: [], cpuPerGb: [], packetSizes: [] }]))
  // edge-a1's pod traffic with a peer node, from its /status: packets and bytes each way.
  type PeerTraffic = { packetsOut: number, bytesOut: number, packetsIn: number, bytesIn: number }
  const podTraffic = async (to: CniNode): Promise<PeerTraffic> => {
    const t = (await cni.status('edge-a1'))?.cni?.peers?.find(x => x.nodeName === to)
    return { packetsOut: t?.packetsOut ?? 0, bytesOut: t?.bytesOut ?? 0, packetsIn: t?.packetsIn ?? 0, bytesIn: t?.bytesIn ?? 0 }
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < paths.length; i++) {
      const p = paths[(i + round) % paths.length] as typeof paths[number]
      const cpu0 = cpuSeconds('edge-a1') + cpuSeconds(p.to)
      const traffic0 = await podTraffic(p.to)
      const out = JSON.parse(await p.run()) as { end?: { sum_received?: { bytes: number, bits_per_second: number } }, error?: string }
      const cpu = cpuSeconds('edge-a1') + cpuSeconds(p.to) - cpu0
      const received = out.end?.sum_received
      if (received === undefined) throw new Error(`${p.name}: iperf3 failed: ${out.error ?? 'no result'}`)
      const r = results.get(p.name) as { mbps: number[], cpuPerGb: number[], packetSizes: Array<[number, number, number]> }
      r.mbps.push(received.bits_per_second / 8e6)
      r.cpuPerGb.push(cpu / (received.bytes / 1e9))
      const traffic1 = await podTraffic(p.to)
      const d = (k: keyof PeerTraffic): number => traffic1[k] - traffic0[k]
      if (d('packetsOut') > 0) r.packetSizes.push([d('bytesOut') / d('packetsOut'), d('bytesIn') / Math.max(1, d('packetsIn')), d('packetsIn') / d('packetsOut')])
    }
    process.stderr.write(`[bench:cni] round ${round + 1}/${ROUNDS} done\n`)
  }
  const latency = new Map<string, LatencySample[]>(paths.map(p => [p.name, []]))
  if (LATENCY.seconds > 0) {
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < paths.length; i++) {
        const k = (i + round) % paths.length
        const t = latencyTargets[k] as { ns: string, host: string }
        latency.get((paths[k] as typeof paths[number]).name)?.push(await measureLatency({ host: t.host, iperf: 5201, echo: 7000 }, 'idle', { ns: t.ns, client: CLIENT, ...LATENCY }))
      }
      process.stderr.write(`[bench:cni] latency round ${round + 1}/${ROUNDS} done\n`)
    }
  }
  const rss = Object.fromEntries((['k8s-master', 'edge-a1', 'edge-a2', 'edge-b1'] as const).map(n => [n, Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agentPid(n)}/status`, 'utf8'))?.[1]) / 1024]))
  const lines = [
    `machine: ${cpus().length} vCPU ${cpus()[0]?.model ?? ''}, kernel ${release()}, node ${process.version}; ${ROUNDS} rounds of ${SECONDS} s, one iperf3 stream; medians`,
    '',
    '| path | MB/s | CPU-s/GB (both agents) | pod path ÷ proxy path | mean packet out / in, bytes (a1\'s device) |',
    '|---|---|---|---|---|'
  ]
  for (const [i, p] of paths.entries()) {
    const r = results.get(p.name) as { mbps: number[], cpuPerGb: number[], packetSizes: Array<[number, number, number]> }
    const proxy = i % 2 === 0 ? results.get((paths[i + 1] as typeof paths[number]).name) : undefined
    const sizes = r.packetSizes.length > 0 ? `${median(r.packetSizes.map(x => x[0])).toFixed(0)} / ${median(r.packetSizes.map(x => x[1])).toFixed(0)} (${median(r.packetSizes.map(x => x[2])).toFixed(2)} in per out)` : '–'
    lines.push(`| ${p.name} | ${median(r.mbps).toFixed(1)} | ${median(r.cpuPerGb).toFixed(1)} | ${proxy !== undefined ? `${(median(r.mbps) / median(proxy.mbps)).toFixed(2)}×` : '–'} | ${sizes} |`)
  }
  if (LATENCY.seconds > 0) {
    lines.push('', `Latency, idle: a 64-byte echo at ${LATENCY.rate}/s on one connection for ${LATENCY.seconds} s; new connections at ${LATENCY.churn}/s, each one 64-byte exchange, connect to reply. Medians of ${ROUNDS} rounds.`, '',
      '| path | echo p50 µs | p99 µs | p999 µs | new conn p50 µs | p99 µs |', '|---|---|---|---|---|---|')
    for (const p of paths) {
      const xs = latency.get(p.name) ?? []
      const m = (pick: (x: LatencySample) => number): string => median(xs.map(pick)).toFixed(0)
      lines.push(`| ${p.name} | ${m(x => x.echo.p50)} | ${m(x => x.echo.p99)} | ${m(x => x.echo.p999)} | ${m(x => x.open.p50)} | ${m(x => x.open.p99)} |`)
    }
  }
  lines.push('', `agents' RSS after the run, MB: ${Object.entries(rss).map(([n, v]) => `${n} ${v.toFixed(1)}`).join(', ')}`)
  const text = lines.join('\n')
  console.log(text)
  if (opt.out !== undefined) writeFileSync(opt.out, text + '\n')
} finally {
  for (const s of servers) s.kill()
  await cni.stop()
}
