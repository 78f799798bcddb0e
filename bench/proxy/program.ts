// Programming cost of the proxy alone: EdgeProxy with the real nftables
// interceptor, fed by an in-memory service map (no YAML, no API server), run
// inside a scratch network namespace by run.ts. Prints one JSON line.
//   program.ts COUNT CHANGES
import { Registry } from 'prom-client'
import { EdgeProxy, NftInterceptor } from '../../src/proxy/index.ts'
import { DirectDialer } from '../../src/mesh/index.ts'
import { noopLogger } from '../../src/observability/logger.ts'
import type { ServiceChange, ServiceEntry, ServiceKey, ServiceMapView } from '../../src/servicemap/types.ts'

const count = Number(process.argv[2] ?? 10_000)
const changes = Number(process.argv[3] ?? 20)

/** Even services qualify for the kernel path; odd ones have an endpoint on another node and get a userspace listener. */
function entry (i: number, port: number): ServiceEntry {
  return {
    service: {
      namespace: 'many',
      name: `s${i}`,
      type: 'ClusterIP',
      clusterIPs: [`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
      headless: false,
      externalIPs: [],
      loadBalancerIPs: [],
      ports: [{ name: 'p', protocol: 'TCP', port: 80 }],
      sessionAffinity: 'None',
      affinityTimeoutSeconds: 0,
      labels: {}
    },
    endpoints: [{ ip: `10.77.${(i >> 8) & 255}.${(i & 255) + 1}`, ready: true, serving: true, terminating: false, nodeName: i % 2 === 0 ? 'here' : 'elsewhere', ports: [{ name: 'p', protocol: 'TCP', port }] }]
  }
}

class View implements ServiceMapView {
  readonly map = new Map<ServiceKey, ServiceEntry>()
  readonly listeners = new Set<(c: readonly ServiceChange[]) => void>()
  hasSynced (): boolean { return true }
  get (key: ServiceKey): ServiceEntry | undefined { return this.map.get(key) }
  snapshot (): ReadonlyMap<ServiceKey, ServiceEntry> { return this.map }
  byClusterIP (): ServiceEntry | undefined { return undefined }
  subscribe (l: (c: readonly ServiceChange[]) => void): () => void { this.listeners.add(l); return () => this.listeners.delete(l) }
  set (key: ServiceKey, e: ServiceEntry): void {
    const previous = this.map.get(key)
    this.map.set(key, e)
    for (const l of this.listeners) l([{ type: 'upsert', key, entry: e, previous }])
  }
}

const view = new View()
for (let i = 0; i < count; i++) view.map.set(`many/s${i}`, entry(i, 8000))
const rssBefore = process.memoryUsage().rss
const interceptor = new NftInterceptor({ logger: noopLogger })
const proxy = new EdgeProxy({
  logger: noopLogger,
  metrics: new Registry(),
  serviceMap: view,
  interceptor,
  dialer: new DirectDialer(),
  isDirect: node => node === 'here'
}, { listenIp: '127.0.0.1', serviceFilterMode: 'FilterIfLabelExists' })

let t0 = performance.now()
await proxy.start()
const fullMs = performance.now() - t0
const changeMs: number[] = []
for (let c = 1; c <= changes; c++) {
  // Alternate a kernel-path and a userspace-path service.
  const i = (c * 7919) % count
  t0 = performance.now()
  const applied = new Promise<void>(resolve => {
    const orig = interceptor.apply.bind(interceptor)
    interceptor.apply = async (d) => { await orig(d); interceptor.apply = orig; resolve() }
  })
  view.set(`many/s${i}`, entry(i, 8000 + c))
  await applied
  changeMs.push(performance.now() - t0)
}
const rss = process.memoryUsage().rss
await proxy.stop()
await interceptor.remove()
changeMs.sort((a, b) => a - b)
console.log(JSON.stringify({
  count,
  fullMs,
  changeP50: changeMs[Math.floor(changeMs.length / 2)],
  changeMax: changeMs.at(-1),
  rssMB: rss / 1048576,
  rssOverViewMB: (rss - rssBefore) / 1048576
}))
process.exit(0)
