// bench/footprint: idle RSS of the bundled agent, against a bare `node`
// measured in the same run (budget: ≤ 69 MB idle with every module and API
// informers, the Go agent's figure; ≤ 60 MB the goal).
//
//   [BENCH_AGENT_FLAGS=...] npm run bench:footprint [-- --runs 5 --idle-ms 30000 --node /path/to/node]
//
// RSS is read after 30 s idle: an agent's periodic work used to be optimised by
// V8 after about 20 s, and a read at 5 s missed those 7-8 MB.
//
// `--node` runs the bare baseline and every agent on another Node binary (to
// compare release lines). The agent unmaps its start's pages once it idles
// (src/bin/startup-pages.ts). One scenario keeps them (`releaseStartupPages: false`), to show
// what the release is worth; the anonymous column is the memory no release
// touches. Agents run as the image runs them: the Node flags on
// the command line and the launcher's malloc settings (src/bin/node-flags.ts);
// the bare baseline gets the same malloc settings.
//
// Scenarios: the agent on a standalone services file with DNS off (no root);
// the same with EdgeDNS on, and with every module (DNS, proxy with nftables,
// tunnel), and with upstream's discovery too (mDNS, DHT), inside a
// throw-away network namespace (root only);
// and the agent's kube data layer over TLS against a real kube-apiserver;
// and every module with API informers against that API server holding 100
// services (the agent in a namespace reaches the host's loopback through a
// Unix socket, which crosses network namespaces), and that with the edge CNI
// (its pod block claimed, edge_tun0 up in the namespace).
import { spawn, execFileSync } from 'node:child_process'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { cpus, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { bundleForBench } from '../bundle.ts'
import { AGENT_NODE_FLAGS, MALLOC_ENV } from '../../src/bin/node-flags.ts'
import { residentMB } from '../../src/bin/startup-pages.ts'
import { startControlPlane, haveControlPlaneTools } from '../../test/helpers/control-plane.ts'
import { createServices } from '../kube-services.ts'
import { bridgeApiIntoNetns } from '../../test/helpers/api-bridge.ts'
import { median, takeBenchLock } from '../netns.ts'

takeBenchLock('bench:footprint')

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, 'idle-ms': { type: 'string', default: '30000' }, node: { type: 'string' } } })
const RUNS = Number(values.runs)
const IDLE_MS = Number(values['idle-ms'])
const root = new URL('../../', import.meta.url).pathname
const isRoot = process.getuid?.() === 0

type Footprint = ReturnType<typeof residentMB>

/** Starts argv, waits IDLE_MS, reads RSS (of the last node process in the tree), stops it; `expect` must be in its log by then. */
async function idleRss (argv: string[], env: NodeJS.ProcessEnv = {}, expect?: RegExp): Promise<Footprint> {
  const p = spawn(argv[0] as string, argv.slice(1), { env: { ...process.env, ...MALLOC_ENV, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  p.stderr.on('data', (c: Buffer) => { err += c.toString() })
  await new Promise(resolve => setTimeout(resolve, IDLE_MS))
  if (p.exitCode !== null) throw new Error(`${argv.join(' ')} exited early:\n${err.slice(-2000)}`)
  if (expect !== undefined && !expect.test(err)) throw new Error(`${argv.join(' ')}: no ${String(expect)} in its log within ${IDLE_MS} ms:\n${err.slice(-2000)}`)
  // `ip netns exec` execs node in place, so the pid is node's own.
  const mb = residentMB(p.pid as number)
  p.kill('SIGTERM')
  await new Promise(resolve => p.once('exit', resolve))
  return mb
}

const bundle = await bundleForBench(join(root, 'src/bin/edgemesh.ts'))
const dir = mkdtempSync(join(tmpdir(), 'edgemesh-footprint-'))
const services = join(root, 'examples/standalone/services.yaml')
const writeConfig = (name: string, yaml: string): string => { const f = join(dir, name); writeFileSync(f, yaml); return f }
const standalone = writeConfig('standalone.yaml', `kubeAPIConfig: {standaloneFile: ${services}}\ncommonConfig: {stateDir: ${dir}}\nmodules: {edgeDNS: {enable: false}}\n`)
const withDns = writeConfig('dns.yaml', `kubeAPIConfig: {standaloneFile: ${services}}\ncommonConfig: {stateDir: ${dir}}\nmodules: {edgeDNS: {enable: true}}\n`)
writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster')
const everything = writeConfig('all.yaml', `kubeAPIConfig: {standaloneFile: ${services}}\ncommonConfig: {stateDir: ${dir}}\nmodules: {edgeDNS: {enable: true}, edgeProxy: {enable: true}, edgeTunnel: {enable: true, psk: {path: ${join(dir, 'psk')}}, relayNodes: [{nodeName: relay, advertiseAddress: [127.0.0.1]}]}}\n`)
// Upstream's discovery on top (ours is off by default): mDNS and both DHTs.
const withDiscovery = writeConfig('discovery.yaml', `kubeAPIConfig: {standaloneFile: ${services}}\ncommonConfig: {stateDir: ${dir}}\nmodules: {edgeDNS: {enable: true}, edgeProxy: {enable: true}, edgeTunnel: {enable: true, mdns: {enable: true}, dht: {enable: true}, psk: {path: ${join(dir, 'psk')}}, relayNodes: [{nodeName: relay, advertiseAddress: [127.0.0.1]}]}}\n`)
const env = { NODE_NAME: 'bench-node', NAMESPACE: 'kubeedge' }
// As the image runs it: the Node flags on the command line. BENCH_AGENT_FLAGS
// adds Node flags for every agent (e.g. to weigh a heap setting's memory).
const node = values.node ?? process.execPath
const agent = [node, ...AGENT_NODE_FLAGS, ...(process.env.BENCH_AGENT_FLAGS ?? '').split(' ').filter(f => f !== ''), bundle, 'agent', '--config-file']

const SERVICES = 100

const cp = haveControlPlaneTools() ? await startControlPlane() : undefined
const kube = cp !== undefined ? writeConfig('kube.yaml', `commonConfig: {stateDir: ${dir}}\nmodules: {edgeDNS: {enable: false}}\n`) : undefined
const kubeModules = `modules: {edgeDNS: {enable: true}, edgeProxy: {enable: true}, edgeTunnel: {enable: true, psk: {path: ${join(dir, 'psk')}}, relayNodes: [{nodeName: relay, advertiseAddress: [127.0.0.1]}]}}\n`
const kubeEverything = cp !== undefined ? writeConfig('kube-all.yaml', `commonConfig: {stateDir: ${dir}}\n${kubeModules}`) : undefined
const kubeEverythingKept = cp !== undefined ? writeConfig('kube-all-kept.yaml', `commonConfig: {stateDir: ${dir}, releaseStartupPages: false}\n${kubeModules}`) : undefined
// The same with the edge CNI: a pod block claimed through the API and the routing plane (edge_tun0) up.
const kubeCni = cp !== undefined ? writeConfig('kube-cni.yaml', `commonConfig: {stateDir: ${dir}}\nmodules: {edgeDNS: {enable: true}, edgeProxy: {enable: true}, edgeTunnel: {enable: true, psk: {path: ${join(dir, 'psk')}}, relayNodes: [{nodeName: relay, advertiseAddress: [127.0.0.1]}]}, edgeCNI: {enable: true, meshCIDRConfig: {cloudCIDR: [10.244.0.0/18], edgeCIDR: [10.244.64.0/18]}}}\n`) : undefined
const ns = `emfp${process.pid}`
let bridge: { stop: () => Promise<void> } | undefined
if (isRoot) {
  execFileSync('ip', ['netns', 'add', ns])
  execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up'])
  if (cp !== undefined) {
    // Each with two endpoints on other nodes, so the proxy installs rules for them.
    await createServices(cp, SERVICES, 2)
    // The edge CNI claims its pod block as a Lease in the agent's namespace.
    await cp.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kubeedge' } })
    bridge = await bridgeApiIntoNetns(Number(new URL(cp.server).port), [ns], dir)
  }
}
const kubeEnv = cp !== undefined ? { ...env, KUBECONFIG: cp.kubeconfigPath, KUBERNETES_PORT: 'tcp://10.96.0.1:443' } : env

const scenarios: Array<[string, () => Promise<Footprint>]> = [
  ['bare node (baseline)', () => idleRss([node, '-e', 'setInterval(() => {}, 1000)'])],
  ['agent, standalone file, DNS off', () => idleRss([...agent, standalone], env)],
  ...(isRoot ? [['agent, standalone file, EdgeDNS on (netns)', () => idleRss(['ip', 'netns', 'exec', ns, ...agent, withDns], env)]] as Array<[string, () => Promise<Footprint>]> : []),
  ...(isRoot ? [['agent, every module: DNS + proxy (nftables) + tunnel (netns)', () => idleRss(['ip', 'netns', 'exec', ns, ...agent, everything], env)]] as Array<[string, () => Promise<Footprint>]> : []),
  ...(isRoot ? [['agent, every module + mDNS + DHT (netns)', () => idleRss(['ip', 'netns', 'exec', ns, ...agent, withDiscovery], env)]] as Array<[string, () => Promise<Footprint>]> : []),
  ...(cp !== undefined && kube !== undefined ? [['agent, kube-apiserver over TLS (DNS off)', () => idleRss([...agent, kube], kubeEnv)]] as Array<[string, () => Promise<Footprint>]> : []),
  ...(bridge !== undefined && kubeEverything !== undefined ? [[`agent, every module + API informers, ${SERVICES} services (netns)`, () => idleRss(['ip', 'netns', 'exec', ns, ...agent, kubeEverything], kubeEnv, new RegExp(`"count":${SERVICES},[^\\n]*"msg":"synced"`))]] as Array<[string, () => Promise<Footprint>]> : []),
  ...(bridge !== undefined && kubeEverythingKept !== undefined ? [[`agent, every module + API informers, ${SERVICES} services, startup pages kept (netns)`, () => idleRss(['ip', 'netns', 'exec', ns, ...agent, kubeEverythingKept], kubeEnv, new RegExp(`"count":${SERVICES},[^\\n]*"msg":"synced"`))]] as Array<[string, () => Promise<Footprint>]> : []),
  ...(bridge !== undefined && kubeCni !== undefined ? [[`agent, every module + API informers + edge CNI, ${SERVICES} services (netns)`, () => idleRss(['ip', 'netns', 'exec', ns, ...agent, kubeCni], kubeEnv, /"msg":"edge CNI routing plane up"/)]] as Array<[string, () => Promise<Footprint>]> : [])
]
const results = new Map<string, Footprint[]>(scenarios.map(([name]) => [name, []]))
try {
  for (let run = 0; run < RUNS; run++) {
    // Rotate the starting scenario so drift hits all of them.
    for (let i = 0; i < scenarios.length; i++) {
      const [name, measure] = scenarios[(i + run) % scenarios.length] as [string, () => Promise<Footprint>]
      results.get(name)?.push(await measure())
    }
    process.stderr.write(`[bench:footprint] run ${run + 1}/${RUNS} done\n`)
  }
} finally {
  await bridge?.stop()
  await cp?.stop()
  if (isRoot) execFileSync('ip', ['netns', 'del', ns])
  rmSync(dir, { recursive: true, force: true })
}
const bare = median((results.get('bare node (baseline)') ?? []).map(f => f.rss))
console.log(`machine: ${cpus().length} vCPU ${cpus()[0]?.model ?? ''}, kernel ${release()}, node ${process.version}; idle ${IDLE_MS} ms; median of ${RUNS}`)
console.log('| scenario | RSS MB (median) | min–max | over bare node | of it anonymous |')
console.log('|---|---|---|---|---|')
for (const [name, fs] of results) {
  const xs = fs.map(f => f.rss)
  console.log(`| ${name} | ${median(xs).toFixed(1)} | ${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} | ${name.startsWith('bare') ? '–' : `${median(xs) >= bare ? '+' : ''}${(median(xs) - bare).toFixed(1)}`} | ${median(fs.map(f => f.anon)).toFixed(1)} |`)
}
