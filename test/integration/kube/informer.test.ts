/**
 * Informers against a real kube-apiserver + etcd: event latency, API server
 * restarts with changes made while it was down, and a real 410 Gone.
 */
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { KubeClient } from '../../../src/kube/client.ts'
import type { WatchOptions, WatchStream } from '../../../src/kube/client.ts'
import { resolveKubeConnection } from '../../../src/kube/connection.ts'
import type { KubeAPISettings } from '../../../src/kube/connection.ts'
import { KubeInformer } from '../../../src/kube/informer.ts'
import { RESOURCES } from '../../../src/kube/types.ts'
import type { EndpointSlice, KubeObject, ResourceType, Service } from '../../../src/kube/types.ts'
import { eventually, haveControlPlaneTools, startControlPlane } from '../../helpers/control-plane.ts'
import type { ControlPlane } from '../../helpers/control-plane.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'

const fast = { initialMs: 100, maxMs: 1000, jitter: 0.2 }

function settings (kubeConfig: string): KubeAPISettings {
  return {
    master: '',
    kubeConfig,
    contentType: 'application/vnd.kubernetes.protobuf',
    qps: 100,
    burst: 200,
    metaServer: { server: '', security: { requireAuthorization: false, insecureSkipTLSVerify: false, tlsCaFile: '', tlsCertFile: '', tlsPrivateKeyFile: '' } }
  }
}

function service (name: string, labels: Record<string, string> = {}): Service & { apiVersion: string, kind: string } {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', labels },
    spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }], selector: { app: name } }
  }
}

function slice (name: string, ips: string[]): EndpointSlice & { apiVersion: string, kind: string } {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': name.replace(/-[a-z0-9]+$/, '') } },
    addressType: 'IPv4',
    endpoints: ips.map(ip => ({ addresses: [ip], conditions: { ready: true } })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }]
  }
}

/** Handler calls as `add x`, `update x`, `delete x`. */
function track<T extends KubeObject> (inf: KubeInformer<T>): string[] {
  const calls: string[] = []
  inf.addHandlers({
    onAdd: o => { calls.push(`add ${o.metadata.name}`) },
    onUpdate: (_p, c) => { calls.push(`update ${c.metadata.name}`) },
    onDelete: o => { calls.push(`delete ${o.metadata.name}`) }
  })
  return calls
}

/** name → resourceVersion, as the server has it now. */
async function serverState (cp: ControlPlane, path: string): Promise<Map<string, string>> {
  const r = await cp.request('GET', path)
  assert.equal(r.status, 200)
  return new Map((r.body.items as KubeObject[]).map(o => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o.metadata.resourceVersion ?? '']))
}

function informerState<T extends KubeObject> (inf: KubeInformer<T>): Map<string, string> {
  return new Map(inf.list().map(o => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o.metadata.resourceVersion ?? '']))
}

async function assertMirrors<T extends KubeObject> (cp: ControlPlane, inf: KubeInformer<T>, path: string): Promise<void> {
  let server = new Map<string, string>()
  await eventually(`${inf.name} mirrors ${path}`, async () => {
    server = await serverState(cp, path)
    const mine = informerState(inf)
    return mine.size === server.size && [...server].every(([k, rv]) => mine.get(k) === rv)
  }, 5000, 50)
  assert.deepEqual(informerState(inf), server)
}

/** A real client whose new watches wait at a gate: lets a test age the informer's resourceVersion. */
class GatedClient extends KubeClient {
  gate: Promise<void> | undefined
  blocked = 0
  readonly open = new Set<WatchStream<unknown>>()

  override async watch<T extends KubeObject> (resource: ResourceType, opts?: WatchOptions): Promise<WatchStream<T>> {
    if (this.gate !== undefined) {
      this.blocked++
      await this.gate
    }
    const w = await super.watch<T>(resource, opts)
    this.open.add(w as WatchStream<unknown>)
    return w
  }

  closeWatches (): void {
    for (const w of this.open) w.close()
    this.open.clear()
  }
}

describe('kube informers against a real API server', { skip: haveControlPlaneTools() ? false : 'control plane not built (bash scripts/tools/build-kube.sh)' }, () => {
  let cp: ControlPlane
  let client: KubeClient
  const lines: LogLine[] = []
  let services: KubeInformer<Service>
  let slices: KubeInformer<EndpointSlice>
  let svcCalls: string[] = []
  let esCalls: string[] = []

  before(async () => {
    cp = await startControlPlane()
    client = new KubeClient(resolveKubeConnection(settings(cp.kubeconfigPath), { env: {} }))
    services = new KubeInformer<Service>({ resource: RESOURCES.services, backoff: fast }, { client, logger: recordingLogger(lines) })
    slices = new KubeInformer<EndpointSlice>({ resource: RESOURCES.endpointSlices, backoff: fast }, { client, logger: recordingLogger(lines) })
    svcCalls = track(services)
    esCalls = track(slices)
  })
  after(async () => {
    await services?.stop()
    await slices?.stop()
    client?.close()
    await cp?.stop()
  })

  test('control plane starts within seconds', (t) => {
    t.diagnostic(`control plane startup: ${cp.startupMs} ms`)
    assert.ok(cp.startupMs < 30_000)
  })

  test('Services and EndpointSlices: create, update and delete are reflected within 1 s', async (t) => {
    await Promise.all([services.start(), slices.start()])
    assert.ok(services.hasSynced() && slices.hasSynced())
    assert.ok(services.get('default/kubernetes') !== undefined, 'the built-in kubernetes Service is listed')

    // Measured from just before the write until the informer shows it.
    const ms: Record<string, number> = {}
    const within1s = async (what: string, write: () => Promise<unknown>, seen: () => boolean): Promise<void> => {
      const t0 = performance.now()
      await write()
      await eventually(what, seen, 1000, 2)
      ms[what] = performance.now() - t0
      assert.ok(ms[what] < 1000, `${what} took ${ms[what]} ms`)
    }
    await within1s('svcAdd', () => cp.apply(service('web')), () => services.get('default/web') !== undefined)
    await within1s('svcUpdate', () => cp.apply(service('web', { tier: 'front' })), () => services.get('default/web')?.metadata.labels?.tier === 'front')
    await within1s('svcDelete', () => cp.delete(service('web')), () => services.get('default/web') === undefined)
    await within1s('esAdd', () => cp.apply(slice('web-abc12', ['10.0.0.1'])), () => slices.get('default/web-abc12') !== undefined)
    await within1s('esUpdate', () => cp.apply(slice('web-abc12', ['10.0.0.1', '10.0.0.2'])), () => slices.get('default/web-abc12')?.endpoints?.length === 2)
    await within1s('esDelete', () => cp.delete(slice('web-abc12', [])), () => slices.get('default/web-abc12') === undefined)

    t.diagnostic(`latency ms: ${JSON.stringify(Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, Math.round(v * 10) / 10])))}`)
    assert.deepEqual(svcCalls.filter(c => c.endsWith(' web')), ['add web', 'update web', 'delete web'])
    assert.deepEqual(esCalls, ['add web-abc12', 'update web-abc12', 'delete web-abc12'])
  })

  test('API server restart, with changes made while it was down: no stale or lost object', async (t) => {
    for (const n of ['keep', 'mod', 'gone']) await cp.apply(service(n))
    for (const n of ['keep-1', 'mod-1', 'gone-1']) await cp.apply(slice(n, ['10.1.0.1']))
    await eventually('informers caught up', () => services.get('default/gone') !== undefined && slices.get('default/gone-1') !== undefined, 2000)
    const svcFrom = svcCalls.length
    const esFrom = esCalls.length
    const expiredBefore = services.stats().expired + slices.stats().expired

    const t0 = performance.now()
    await cp.stopApiServer()
    // The cache keeps serving while the server is away.
    assert.ok(services.hasSynced() && services.get('default/keep') !== undefined)
    const extra = await cp.startExtraApiServer()
    try {
      await extra.api.apply(service('mod', { v: '2' }))
      await extra.api.delete(service('gone'))
      await extra.api.apply(service('new'))
      await extra.api.apply(slice('mod-1', ['10.1.0.1', '10.1.0.2']))
      await extra.api.delete(slice('gone-1', []))
      await extra.api.apply(slice('new-1', ['10.1.0.3']))
    } finally {
      await extra.stop()
    }
    await cp.startApiServer()
    const restarted = performance.now()
    await assertMirrors(cp, services, '/api/v1/services')
    await assertMirrors(cp, slices, '/apis/discovery.k8s.io/v1/endpointslices')
    t.diagnostic(`down ${Math.round(restarted - t0)} ms; caught up ${Math.round(performance.now() - restarted)} ms after the restart`)

    assert.deepEqual(svcCalls.slice(svcFrom).sort(), ['add new', 'delete gone', 'update mod'])
    assert.deepEqual(esCalls.slice(esFrom).sort(), ['add new-1', 'delete gone-1', 'update mod-1'])
    assert.equal(services.get('default/mod')?.metadata.labels?.v, '2')
    assert.equal(slices.get('default/mod-1')?.endpoints?.length, 2)
    // The restarted server's watch cache no longer knows our resourceVersion: a real 410.
    assert.ok(services.stats().expired + slices.stats().expired > expiredBefore)
    assert.ok(lines.some(l => l.level === 'warn' && l.fields?.code === 'EM_ERR_KUBE_UNREACHABLE'), 'the outage was logged')
  })

  test('forced expiry (etcd compaction + API server restart) answers 410; the relist delivers the diff', async (t) => {
    const gated = new GatedClient(resolveKubeConnection(settings(cp.kubeconfigPath), { env: {} }))
    const own: LogLine[] = []
    const inf = new KubeInformer<Service>({ resource: RESOURCES.services, backoff: fast }, { client: gated, logger: recordingLogger(own) })
    t.after(async () => { await inf.stop(); gated.close() })
    for (const n of ['x-keep', 'x-mod', 'x-gone']) await cp.apply(service(n))
    const all = track(inf)
    await inf.start()
    const from = all.length
    const oldRv = inf.stats().resourceVersion

    // Hold the informer at its current resourceVersion while the world moves on.
    let release = (): void => {}
    gated.gate = new Promise<void>(resolve => { release = resolve })
    gated.closeWatches()
    await eventually('informer waits at the gate', () => gated.blocked === 1, 2000)
    await cp.apply(service('x-mod', { v: '2' }))
    await cp.delete(service('x-gone'))
    await cp.apply(service('x-new'))
    await cp.stopApiServer()
    const compactedAt = await cp.compactEtcd()
    await cp.startApiServer()
    assert.ok(Number(oldRv) < compactedAt)
    gated.gate = undefined
    release()

    await eventually('relisted after 410', () => inf.stats().expired === 1 && inf.stats().lists === 2, 20_000, 20)
    await assertMirrors(cp, inf, '/api/v1/services')
    assert.deepEqual(all.slice(from).sort(), ['add x-new', 'delete x-gone', 'update x-mod'])
    const expired = own.find(l => l.msg === 'watch expired; relisting')
    assert.equal(expired?.fields?.resourceVersion, oldRv)
    assert.match(String(expired?.fields?.reason), /too old resource version/)
    t.diagnostic(`server said: ${String(expired?.fields?.reason)}`)
    assert.ok(own.some(l => l.msg === 'relisted' && l.fields?.added === 1 && l.fields.updated === 1 && l.fields.deleted === 1))
  })
})
