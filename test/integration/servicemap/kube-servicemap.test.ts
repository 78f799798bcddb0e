// The agent's whole data layer (lean kube client → informers → service map),
// wired by the composition root, against a real kube-apiserver.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startControlPlane, haveControlPlaneTools } from '../../helpers/control-plane.ts'
import type { ControlPlane } from '../../helpers/control-plane.ts'
import { parseConfig } from '../../../src/config/load.ts'
import { createAgent } from '../../../src/app/agent.ts'
import type { App } from '../../../src/app/agent.ts'
import { noopLogger } from '../../../src/observability/logger.ts'

type Obj = Record<string, unknown> & { apiVersion: string, kind: string, metadata: { name: string, namespace: string, labels?: Record<string, string> } }
const service = (name: string): Obj =>
  ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } })
const slice = (svc: string, ips: string[], node = 'edge-1'): Obj => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${svc}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map(ip => ({ addresses: [ip], conditions: { ready: true }, nodeName: node }))
})

async function within (ms: number, what: string, check: () => boolean): Promise<number> {
  const t0 = performance.now()
  while (!check()) {
    if (performance.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  return performance.now() - t0
}

describe('service map on a real API server', { skip: haveControlPlaneTools() ? false : 'control plane not built (npm run tools)' }, () => {
  let cp: ControlPlane
  let app: App
  let stateDir: string

  before(async () => {
    cp = await startControlPlane()
    stateDir = await mkdtemp(join(tmpdir(), 'edgemesh-smi-'))
    const { config } = parseConfig('agent', `commonConfig: {stateDir: ${stateDir}}\nmodules: {edgeDNS: {enable: false}}`, { env: {} })
    app = createAgent(config, { nodeName: 'edge-1', namespace: 'kubeedge', mode: 'ManualMode' }, { logger: noopLogger, env: { KUBECONFIG: cp.kubeconfigPath } })
    await app.start()
    await within(10_000, 'initial sync', () => app.serviceMap.hasSynced())
  })
  after(async () => {
    await app?.stop()
    await cp?.stop()
    await rm(stateDir, { recursive: true, force: true })
  })

  test('create, update and delete of Services and EndpointSlices are reflected within 1 s', async () => {
    const map = app.serviceMap
    await cp.apply(service('web'))
    await within(1000, 'service created', () => map.get('default/web') !== undefined)
    const ip = map.get('default/web')?.service.clusterIPs[0] as string
    assert.match(ip, /^10\.96\./)
    assert.equal(map.byClusterIP(ip)?.service.name, 'web')

    await cp.apply(slice('web', ['10.244.1.5']))
    await within(1000, 'endpoints added', () => map.get('default/web')?.endpoints[0]?.ip === '10.244.1.5')
    await cp.apply(slice('web', ['10.244.1.6', '10.244.2.7'], 'edge-2'))
    await within(1000, 'endpoints changed', () => map.get('default/web')?.endpoints.map(e => e.ip).join() === '10.244.1.6,10.244.2.7')
    assert.equal(map.get('default/web')?.endpoints[0]?.nodeName, 'edge-2')

    await cp.delete({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: 'default' } })
    await within(1000, 'endpoints deleted', () => map.get('default/web')?.endpoints.length === 0)
    await cp.delete({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' } })
    await within(1000, 'service deleted', () => map.get('default/web') === undefined && map.byClusterIP(ip) === undefined)
  })

  test('API server restart with changes made while it was down: no stale or lost endpoint', async () => {
    const map = app.serviceMap
    await cp.apply(service('api'))
    await cp.apply(slice('api', ['10.244.3.1']))
    await cp.apply(service('old'))
    await within(1000, 'before restart', () => map.get('default/api')?.endpoints.length === 1 && map.get('default/old') !== undefined)

    await cp.stopApiServer()
    // Another API server on the same etcd takes writes while ours is down.
    const extra = await cp.startExtraApiServer()
    try {
      await extra.api.apply(slice('api', ['10.244.3.2']))
      await extra.api.apply(service('fresh'))
      await extra.api.delete({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'old', namespace: 'default' } })
    } finally {
      await extra.stop()
    }
    await cp.startApiServer()
    await within(15_000, 'converged after restart', () =>
      map.get('default/api')?.endpoints.map(e => e.ip).join() === '10.244.3.2' &&
      map.get('default/fresh') !== undefined &&
      map.get('default/old') === undefined)
    assert.equal(map.source(), 'live')
  })
})
