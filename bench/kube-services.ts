// The services the benches create in a real API server (namespace `bench`):
// `svc-<i>`, port 80 → 8080, and one EndpointSlice each whose endpoints sit on
// nodes edge-0, edge-1, …
import type { ControlPlane } from '../test/helpers/control-plane.ts'

/** Service i's EndpointSlice; `generation` moves every address, for updates. */
export function benchSlice (i: number, endpoints: number, generation: number): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `svc-${i}-abcde`, namespace: 'bench', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: endpoints }, (_, e) => ({
      addresses: [`10.${(i >> 8) & 255}.${i & 255}.${(e + generation) % 250 + 1}`],
      conditions: { ready: true },
      nodeName: `edge-${e}`,
      targetRef: { kind: 'Pod', namespace: 'bench', name: `svc-${i}-pod-${e}` }
    }))
  }
}

/** Creates `count` services with their slices, 24 requests at a time; returns the ms it took. */
export async function createServices (cp: ControlPlane, count: number, endpoints: number, progress: (created: number) => void = () => {}): Promise<number> {
  await cp.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench' } })
  const t0 = performance.now()
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++
      const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: 'bench' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } }
      for (const [path, body] of [['/api/v1/namespaces/bench/services', svc], ['/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices', benchSlice(i, endpoints, 0)]] as const) {
        const r = await cp.request('POST', path, body)
        if (r.status >= 300 && r.status !== 409) throw new Error(`create ${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`)
      }
      progress(i)
    }
  }
  await Promise.all(Array.from({ length: 24 }, worker))
  return performance.now() - t0
}
