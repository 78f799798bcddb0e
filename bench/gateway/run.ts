// Gateway bench: HTTP/1.1 keep-alive through `edgemesh gateway` and through
// Debian's nginx configured as the equivalent reverse proxy (one worker, a
// keep-alive upstream pool), same backend, same run, rotating order, medians;
// then 5,000 routes in a real kube-apiserver: propagation of a change and the
// gateway's RSS.
//
//   sudo npm run bench:gateway [-- --rounds 3 --seconds 8 --routes 5000 --out /tmp/gateway.md]   (results go into docs/benchmarks.md)
//
// Everything runs on loopback in namespace emg (lo only). Backend: nginx
// answering a fixed 64-byte body (one worker). Peak: wrk -t1 -c64. Latency:
// client.ts, open loop at half of nginx's peak, 64 connections.
// Needs root (namespace; apt-get for wrk and nginx when missing).
import { spawn, spawnSync } from 'node:child_process'
import http from 'node:http'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parseAllDocuments, stringify } from 'yaml'
import { eventually, startControlPlane } from '../../test/helpers/control-plane.ts'
import { bundleForBench } from '../bundle.ts'
import { nodeFlagsFor, MALLOC_ENV } from '../../src/bin/node-flags.ts'
import { deleteNetns, exec, killAll, median, requireRoot, takeBenchLock, rssMB, run, sh, waitFor } from '../netns.ts'

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    routes: { type: 'string', default: '5000' },
    out: { type: 'string' }
  }
})
const ROUNDS = Number(opt.rounds)
const SECONDS = Number(opt.seconds)
const ROUTES = Number(opt.routes)
const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..', '..')
const NS = 'emg'
const PORT = { backend: 18080, nginx: 18081, edgemesh: 18082, status: 18083, 'bare node proxy': 18084, 'bare node server': 18085, 'bare node proxy, node:http client': 18086, 'bare node byte forwarder': 18087 }
const BODY = 'x'.repeat(63) + '\n'

requireRoot('bench:gateway')
takeBenchLock('bench:gateway')

function ensureTools (): void {
  const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd} || test -x /usr/sbin/${cmd}`], { stdio: 'ignore' }).status === 0
  const missing = [['wrk', 'wrk'], ['nginx', 'nginx-light']].filter(([cmd]) => !have(cmd as string)).map(([, pkg]) => pkg as string)
  if (missing.length === 0) return
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  if (spawnSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env }).status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    if (spawnSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env }).status !== 0) process.exit(2)
  }
  // The package starts a system nginx on port 80; the bench runs its own.
  spawnSync('systemctl', ['disable', '--now', 'nginx'], { stdio: 'ignore' })
}

function nginxConf (dir: string, name: string, server: string): string {
  const file = join(dir, `${name}.conf`)
  writeFileSync(file, [
    'worker_processes 1;', 'daemon off;', `pid ${join(dir, `${name}.pid`)};`, `error_log ${join(dir, `${name}.err`)} warn;`,
    'events { worker_connections 4096; }',
    'http {', '  access_log off;', `  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};`,
    '  keepalive_requests 1000000;', server, '}', ''
  ].join('\n'))
  return file
}

interface Peak { rps: number, p99ms: number }
interface Fixed { p50: number, p99: number, p999: number, errors: number }

function wrk (port: number): Peak {
  const out = exec(NS, ['wrk', '-t1', '-c64', `-d${SECONDS}s`, '--latency', `http://127.0.0.1:${port}/`])
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
  const m = /\s99%\s+([\d.]+)(us|ms|s)/.exec(out)
  const p99ms = Number(m?.[1]) * (m?.[2] === 'us' ? 0.001 : m?.[2] === 's' ? 1000 : 1)
  if (/Non-2xx|Socket errors/.test(out)) console.error(out)
  return { rps, p99ms }
}

function fixedRate (port: number, rate: number): Fixed {
  return JSON.parse(exec(NS, [process.execPath, join(here, 'client.ts'), `127.0.0.1:${port}`, String(SECONDS), String(Math.round(rate)), '64'])) as Fixed
}

function world (): string {
  const docs: unknown[] = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'backend', namespace: 'default' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'backend-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'backend' } }, addressType: 'IPv4', ports: [{ name: 'http', port: PORT.backend, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.1'] }] },
    { apiVersion: 'networking.istio.io/v1beta1', kind: 'Gateway', metadata: { name: 'bench', namespace: 'default' }, spec: { servers: [{ port: { number: PORT.edgemesh, protocol: 'HTTP' }, hosts: ['*'] }] } },
    // The load's Host is 127.0.0.1:port; other hosts are the many-routes part's.
    { apiVersion: 'networking.istio.io/v1beta1', kind: 'VirtualService', metadata: { name: 'bench', namespace: 'default' }, spec: { gateways: ['bench'], hosts: ['127.0.0.1'], http: [{ route: [{ destination: { host: 'backend' } }] }] } }
  ]
  return docs.map(d => stringify(d)).join('---\n')
}

/** Polls until a request for `host` on 127.0.0.1:`port` gets `expectStatus`; ms from `since`. */
async function propagation (port: number, host: string, expectStatus: number, since: number): Promise<number> {
  while (performance.now() - since < 30_000) {
    const status = await new Promise<number>(resolve => {
      http.get({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, res => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', () => resolve(0))
    })
    if (status === expectStatus) return performance.now() - since
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  return NaN
}

// A redirect needs no backend: what is measured is the route reaching the gateway.
const virtualService = (i: number, host: string): object => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name: `app-${i}`, namespace: 'default' },
  spec: { gateways: ['bench'], hosts: [host], http: [{ match: [{ uri: { prefix: '/' } }], redirect: { uri: `/app-${i}` } }] }
})

/**
 * ROUTES VirtualServices in a real kube-apiserver, served by a gateway with
 * informers (in the root namespace, on loopback, where the API server is);
 * then the last one moved to another host, several times.
 */
async function routesThroughApi (entry: string, dir: string): Promise<{ rss: number, changes: number[] }> {
  const cp = await startControlPlane()
  try {
    for (const f of readdirSync(join(root, 'deploy/helm/edgemesh/crds'))) {
      for (const d of parseAllDocuments(readFileSync(join(root, 'deploy/helm/edgemesh/crds', f), 'utf8'))) await cp.apply(d.toJS() as never)
    }
    await eventually('Istio CRDs served', async () => (await cp.request('GET', '/apis/networking.istio.io/v1/virtualservices')).status === 200, 20_000, 100)
    await cp.apply({ apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'bench', namespace: 'default' }, spec: { servers: [{ port: { number: PORT.edgemesh + 100, protocol: 'HTTP' }, hosts: ['*'] }] } } as never)
    const started = performance.now()
    for (let i = 0; i < ROUTES; i += 50) await Promise.all(Array.from({ length: Math.min(50, ROUTES - i) }, async (_, j) => await cp.apply(virtualService(i + j, `app-${i + j}.example.com`) as never)))
    console.error(`${ROUTES} VirtualServices created in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    const config = join(dir, 'gateway-api.yaml')
    writeFileSync(config, stringify({ kubeAPIConfig: { kubeConfig: cp.kubeconfigPath }, statusPort: 0, modules: { edgeGateway: { enable: true, includeIP: '127.0.0.1' }, edgeTunnel: { enable: false } } }))
    const flags = (process.env.BENCH_AGENT_FLAGS ?? '').split(' ').filter(f => f !== '')
    const gateway = spawn(process.execPath, [...nodeFlagsFor('gateway'), ...flags, entry, 'gateway', '--config-file', config], { env: { ...process.env, ...MALLOC_ENV, NODE_NAME: 'bench' }, stdio: 'ignore' })
    try {
      const port = PORT.edgemesh + 100
      const last = ROUTES - 1
      if (Number.isNaN(await propagation(port, `app-${last}.example.com`, 301, performance.now()))) throw new Error('the routes were not served within 30 s')
      await new Promise(resolve => setTimeout(resolve, 2000))
      const rss = rssMB(gateway.pid as number)
      const changes: number[] = []
      for (let i = 0; i < 7; i++) {
        const host = `${i % 2 === 0 ? 'moved' : 'app'}-${last}.example.com`
        const at = performance.now()
        await cp.apply(virtualService(last, host) as never)
        changes.push(await propagation(port, host, 301, at))
      }
      return { rss, changes }
    } finally {
      gateway.kill('SIGTERM')
    }
  } finally {
    await cp.stop()
  }
}

async function main (): Promise<void> {
  ensureTools()
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-bench-gateway-'))
  deleteNetns(NS)
  sh(['ip', 'netns', 'add', NS])
  sh(['ip', '-n', NS, 'link', 'set', 'lo', 'up'])
  try {
    const backend = run(NS, ['nginx', '-c', nginxConf(dir, 'backend', `  server { listen 127.0.0.1:${PORT.backend}; location / { return 200 '${BODY.trimEnd()}\n'; } }`)])
    const nginx = run(NS, ['nginx', '-c', nginxConf(dir, 'proxy', [
      `  upstream backend { server 127.0.0.1:${PORT.backend}; keepalive 64; }`,
      `  server { listen 127.0.0.1:${PORT.nginx}; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }`
    ].join('\n'))])
    const entry = await bundleForBench(join(root, 'src/bin/edgemesh.ts'))
    const worldFile = join(dir, 'world.yaml')
    writeFileSync(worldFile, world())
    const config = join(dir, 'gateway.yaml')
    writeFileSync(config, stringify({ kubeAPIConfig: { standaloneFile: worldFile }, statusPort: PORT.status, modules: { edgeGateway: { enable: true, includeIP: '127.0.0.1' }, edgeTunnel: { enable: false } } }))
    const flags = (process.env.BENCH_AGENT_FLAGS ?? '').split(' ').filter(f => f !== '')
    const gateway = run(NS, [process.execPath, ...nodeFlagsFor('gateway'), ...flags, entry, 'gateway', '--config-file', config], { ...MALLOC_ENV, NODE_NAME: 'bench' })
    await waitFor(gateway, /"msg":"running"/, 20_000)
    await new Promise(resolve => setTimeout(resolve, 500))
    if (backend.exitCode !== null || nginx.exitCode !== null) throw new Error(`nginx exited: ${backend.out()}${nginx.out()}`)
    const idleRss = rssMB(gateway.pid as number)

    run(NS, [process.execPath, join(here, 'bare-proxy.ts'), 'proxy', String(PORT['bare node proxy']), String(PORT.backend)])
    run(NS, [process.execPath, join(here, 'bare-proxy.ts'), 'server', String(PORT['bare node server'])])
    run(NS, [process.execPath, join(here, 'bare-proxy.ts'), 'proxy-http', String(PORT['bare node proxy, node:http client']), String(PORT.backend)])
    run(NS, [process.execPath, join(here, 'bare-proxy.ts'), 'bytes', String(PORT['bare node byte forwarder']), String(PORT.backend)])
    await new Promise(resolve => setTimeout(resolve, 1000))
    const targets = ['nginx', 'edgemesh', 'bare node proxy', 'bare node proxy, node:http client', 'bare node byte forwarder', 'bare node server'] as const
    const peak: Record<string, Peak[]> = Object.fromEntries(targets.map(t => [t, []]))
    const fixed: Record<string, Fixed[]> = Object.fromEntries(targets.map(t => [t, []]))
    const moderate: Record<string, Fixed[]> = Object.fromEntries(targets.map(t => [t, []]))
    for (let round = 0; round < ROUNDS; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length] as typeof targets[number])
      for (const t of order) {
        const p = wrk(PORT[t])
        peak[t]?.push(p)
        console.error(`round ${round + 1} ${t}: peak ${p.rps.toFixed(0)} req/s, p99 ${p.p99ms.toFixed(2)} ms`)
      }
      // The target's rate (half of nginx's peak), and half of our own peak: the latency at a load we carry.
      const rates: Array<[Record<string, Fixed[]>, number]> = [[fixed, median((peak.nginx ?? []).map(p => p.rps)) / 2], [moderate, median((peak.edgemesh ?? []).map(p => p.rps)) / 2]]
      for (const [into, rate] of rates) {
        for (const t of order) {
          const f = fixedRate(PORT[t], rate)
          into[t]?.push(f)
          console.error(`round ${round + 1} ${t}: ${rate.toFixed(0)} req/s fixed: p50 ${(f.p50 / 1000).toFixed(2)} p99 ${(f.p99 / 1000).toFixed(2)} p999 ${(f.p999 / 1000).toFixed(2)} ms, ${f.errors} errors`)
        }
      }
    }
    const loadedRss = rssMB(gateway.pid as number)

    gateway.kill('SIGTERM')
    const routes = await routesThroughApi(entry, dir)
    const med = (t: string, f: (x: Peak) => number): number => median((peak[t] ?? []).map(f))
    const medF = (t: string, k: keyof Fixed, from = fixed): number => median((from[t] ?? []).map(f => f[k]))
    const ratio = med('edgemesh', p => p.rps) / med('nginx', p => p.rps)
    const p99Ratio = medF('edgemesh', 'p99') / medF('nginx', 'p99')
    const report = [
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; ${ROUNDS} rounds, medians; wrk -t1 -c64 ${SECONDS} s; fixed rate = half of nginx's peak, open loop, 64 keep-alive connections; backend nginx (1 worker) answering 64 bytes; nginx proxy: 1 worker, upstream keepalive 64.`,
      '',
      `| proxy | peak req/s | peak p99 ms | at ${(median((peak.nginx ?? []).map(p => p.rps)) / 2).toFixed(0)} req/s (half nginx's peak): p50 / p99 / p999 ms | at ${(median((peak.edgemesh ?? []).map(p => p.rps)) / 2).toFixed(0)} req/s (half ours): p50 / p99 / p999 ms |`,
      '|---|---|---|---|---|',
      ...targets.map(t => `| ${t} | ${med(t, p => p.rps).toFixed(0)} | ${med(t, p => p.p99ms).toFixed(2)} | ${(['p50', 'p99', 'p999'] as const).map(k => (medF(t, k) / 1000).toFixed(2)).join(' / ')} | ${(['p50', 'p99', 'p999'] as const).map(k => (medF(t, k, moderate) / 1000).toFixed(2)).join(' / ')} |`),
      '',
      `- edgemesh / nginx: peak ${ratio.toFixed(2)}× (target ≥ 0.6×), p99 at half of nginx's peak ${p99Ratio.toFixed(2)}× (target ≤ 2×).`,
      `- edgemesh / bare Node proxy (node:http server + undici pool, no routing): peak ${(med('edgemesh', p => p.rps) / med('bare node proxy', p => p.rps)).toFixed(2)}×; a Node server answering by itself: ${(med('bare node server', p => p.rps) / med('nginx', p => p.rps)).toFixed(2)}× nginx's proxy; a Node byte forwarder with no HTTP logic: ${(med('bare node byte forwarder', p => p.rps) / med('nginx', p => p.rps)).toFixed(2)}× nginx's proxy, and edgemesh ${(med('edgemesh', p => p.rps) / med('bare node byte forwarder', p => p.rps)).toFixed(2)}× it.`,
      `- Gateway RSS: ${idleRss.toFixed(1)} MB idle with one route, ${loadedRss.toFixed(1)} MB after the load rounds.`,
      `- ${ROUTES} routes from a real kube-apiserver (one VirtualService each, informers): gateway RSS ${routes.rss.toFixed(1)} MB (target ≤ 150 MB); one VirtualService moved to a new host, served after p50 ${median(routes.changes).toFixed(0)} ms, max ${Math.max(...routes.changes).toFixed(0)} ms (${routes.changes.length} changes, from the API write to the first request that gets the new route; target < 1 s).`
    ].join('\n')
    console.log(report)
    if (opt.out !== undefined) writeFileSync(opt.out, report + '\n')
  } finally {
    killAll()
    deleteNetns(NS)
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
