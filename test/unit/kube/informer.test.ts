import { test, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { KubeClient } from '../../../src/kube/client.ts'
import type { KubeConnection } from '../../../src/kube/connection.ts'
import { KubeForbiddenError, KubeInformerStoppedError } from '../../../src/kube/errors.ts'
import { KubeInformer, startWithFallback } from '../../../src/kube/informer.ts'
import type { KubeInformerOptions } from '../../../src/kube/informer.ts'
import { RESOURCES } from '../../../src/kube/types.ts'
import type { Endpoints, EndpointSlice, KubeObject, Service } from '../../../src/kube/types.ts'
import { FakeApiServer } from '../../helpers/fake-apiserver.ts'
import { eventually } from '../../helpers/control-plane.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'

const SVC = '/api/v1/services'

function conn (server: string): KubeConnection {
  return {
    mode: 'EdgeMode',
    server,
    description: `metaServer ${server}`,
    tls: { insecureSkipTLSVerify: false },
    qps: 1000,
    burst: 1000,
    requestedContentType: 'application/json'
  }
}

function svc (name: string, labels?: Record<string, string>): Service {
  return { metadata: { name, namespace: 'default', ...(labels !== undefined ? { labels } : {}) }, spec: { ports: [{ port: 80 }] } }
}

/** Records handler calls as `add a`, `update a`, `delete a`, `synced`. */
function track<T extends KubeObject> (inf: KubeInformer<T>): string[] {
  const calls: string[] = []
  inf.addHandlers({
    onAdd: o => { calls.push(`add ${o.metadata.name}`) },
    onUpdate: (p, c) => { calls.push(p === c ? `resync ${c.metadata.name}` : `update ${c.metadata.name}`) },
    onDelete: o => { calls.push(`delete ${o.metadata.name}`) },
    onSynced: () => { calls.push('synced') }
  })
  return calls
}

let fake: FakeApiServer
let client: KubeClient
const fast = { initialMs: 10, maxMs: 50, jitter: 0 }

beforeEach(async () => {
  fake = await new FakeApiServer().listen()
  client = new KubeClient(conn(fake.url))
})
afterEach(async () => {
  client.close()
  await fake.close()
})

function informer<T extends KubeObject = Service> (over: Partial<KubeInformerOptions<T>> = {}, lines: LogLine[] = []): KubeInformer<T> {
  return new KubeInformer<T>({ resource: RESOURCES.services, backoff: fast, watchTimeoutSeconds: 60, ...over }, { client, logger: recordingLogger(lines) })
}

test('syncs, then follows watch events; handlers run after the store update', async (t) => {
  fake.put(SVC, svc('a'))
  fake.put(SVC, svc('b'))
  const lines: LogLine[] = []
  const inf = informer({}, lines)
  t.after(() => inf.stop())
  const seenInStore: boolean[] = []
  inf.addHandlers({
    onAdd: o => seenInStore.push(inf.get(`default/${o.metadata.name}`) === o),
    onUpdate: (_p, c) => seenInStore.push(inf.get(`default/${c.metadata.name}`) === c),
    onDelete: o => seenInStore.push(inf.get(`default/${o.metadata.name}`) === undefined)
  })
  const calls = track(inf)
  assert.equal(inf.hasSynced(), false)
  await inf.start()
  assert.equal(inf.hasSynced(), true)
  assert.equal(inf.isReady(), true)
  assert.equal(inf.name, 'kube:services')
  assert.deepEqual(inf.list().map(s => s.metadata.name).sort(), ['a', 'b'])
  assert.deepEqual(calls, ['add a', 'add b', 'synced'])
  const synced = lines.find(l => l.msg === 'synced')
  assert.equal(synced?.component, 'kube:services')
  assert.equal(synced?.fields?.count, 2)
  assert.equal(typeof synced?.fields?.ms, 'number')

  fake.put(SVC, svc('c'))
  fake.put(SVC, svc('a', { v: '2' }))
  fake.remove(SVC, 'default/b')
  await eventually('events applied', () => calls.length === 6, 2000)
  assert.deepEqual(calls.slice(3), ['add c', 'update a', 'delete b'])
  assert.deepEqual(inf.get('default/a')?.metadata.labels, { v: '2' })
  assert.equal(inf.get('default/b'), undefined)
  assert.ok(seenInStore.every(Boolean))
  assert.ok(lines.some(l => l.level === 'debug' && l.msg === 'event' && l.fields?.type === 'DELETED' && l.fields.key === 'default/b'))
})

test('a 410 on rewatch relists and delivers exactly the difference', async (t) => {
  for (const n of ['keep', 'mod', 'gone']) fake.put(SVC, svc(n))
  const lines: LogLine[] = []
  const inf = informer({}, lines)
  t.after(() => inf.stop())
  const calls = track(inf)
  await inf.start()
  // Changes the watch never sees, then the history is "compacted" away.
  fake.putSilently(SVC, svc('mod', { v: '2' }))
  fake.removeSilently(SVC, 'default/gone')
  fake.putSilently(SVC, svc('new'))
  fake.expiredBelow = fake.rv
  fake.closeWatches()
  await eventually('relisted', () => inf.get('default/new') !== undefined && inf.get('default/gone') === undefined, 2000)
  assert.deepEqual(calls.slice(4).sort(), ['add new', 'delete gone', 'update mod'])
  assert.deepEqual(inf.get('default/mod')?.metadata.labels, { v: '2' })
  const s = inf.stats()
  assert.equal(s.expired, 1)
  assert.equal(s.lists, 2)
  assert.equal(s.resourceVersion, String(fake.rv))
  assert.ok(lines.some(l => l.msg === 'watch expired; relisting'))
  assert.ok(lines.some(l => l.msg === 'relisted' && l.fields?.added === 1 && l.fields.updated === 1 && l.fields.deleted === 1))
  // The new watch resumes from the relist, not from scratch.
  await eventually('rewatched', () => fake.watcherCount() === 1, 2000)
  assert.equal(fake.requests.at(-1)?.query.get('resourceVersion'), String(fake.rv))
})

test('a server that keeps answering 410 right after a relist is retried with backoff, not in a hot loop', async (t) => {
  fake.put(SVC, svc('a'))
  const inf = informer({ backoff: { initialMs: 30, maxMs: 30, jitter: 0 } })
  t.after(() => inf.stop())
  await inf.start()
  fake.expiredBelow = Number.MAX_SAFE_INTEGER
  fake.closeWatches()
  await new Promise(resolve => setTimeout(resolve, 200))
  const lists = inf.stats().lists
  assert.ok(lists >= 2 && lists <= 10, `relisted ${lists} times in 200 ms`)
})

test('a watch the server ends resumes from the last resourceVersion, bookmarks included, without relisting', async (t) => {
  fake.put(SVC, svc('a'))
  const inf = informer()
  t.after(() => inf.stop())
  await inf.start()
  await eventually('watching', () => fake.watcherCount() === 1, 2000)
  fake.sendRaw(SVC, JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Service', metadata: { resourceVersion: '777' } } }) + '\n')
  await eventually('bookmark seen', () => inf.stats().resourceVersion === '777', 2000)
  fake.closeWatches()
  await eventually('rewatched', () => inf.stats().watches === 2, 2000)
  const watchReqs = fake.requests.filter(r => r.query.get('watch') === 'true')
  assert.equal(watchReqs.at(-1)?.query.get('resourceVersion'), '777')
  assert.equal(inf.stats().lists, 1)
})

test('start() does not hang on an unreachable server; waitForSync resolves once it appears', async (t) => {
  const s = net.createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>(resolve => s.close(() => resolve()))
  const c = new KubeClient(conn(`http://127.0.0.1:${port}`))
  const lines: LogLine[] = []
  const inf = new KubeInformer<Service>({ resource: RESOURCES.services, backoff: fast }, { client: c, logger: recordingLogger(lines) })
  t.after(async () => { await inf.stop(); c.close() })
  await inf.start()
  assert.equal(inf.hasSynced(), false)
  await eventually('retried', () => inf.stats().errors >= 2, 2000)
  const warn = lines.find(l => l.level === 'warn')
  assert.equal(warn?.msg, 'list failed; retrying in the background')
  assert.equal(warn?.fields?.code, 'EM_ERR_KUBE_UNREACHABLE')
  assert.equal(typeof warn?.fields?.backoffMs, 'number')

  const late = await new FakeApiServer().listen(port)
  t.after(() => late.close())
  late.put(SVC, svc('a'))
  await inf.waitForSync(AbortSignal.timeout(3000))
  assert.equal(inf.hasSynced(), true)
  assert.equal(inf.get('default/a')?.metadata.name, 'a')
})

test('an unreachable server is retried every second however long it was gone, so its return is noticed at once', async (t) => {
  const s = net.createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>(resolve => s.close(() => resolve()))
  const c = new KubeClient(conn(`http://127.0.0.1:${port}`))
  // The default backoff (500 ms doubling to 30 s) would try 4 times in 6 s.
  const inf = new KubeInformer<Service>({ resource: RESOURCES.services }, { client: c, logger: recordingLogger([]) })
  t.after(async () => { await inf.stop(); c.close() })
  await inf.start()
  await new Promise(resolve => setTimeout(resolve, 6000))
  assert.ok(inf.stats().errors >= 6, `${inf.stats().errors} attempts in 6 s`)
  const late = await new FakeApiServer().listen(port)
  t.after(() => late.close())
  late.put(SVC, svc('a'))
  const back = performance.now()
  await inf.waitForSync(AbortSignal.timeout(3000))
  assert.ok(performance.now() - back < 1500, `synced ${Math.round(performance.now() - back)} ms after the server returned`)
})

test('backoff grows and is capped; 5xx errors are retried until the server recovers', async (t) => {
  fake.failWith = 503
  const inf = informer({ backoff: { initialMs: 5, maxMs: 20, factor: 2, jitter: 0 } })
  t.after(() => inf.stop())
  await inf.start()
  await eventually('several failures', () => inf.stats().errors >= 5, 2000)
  assert.equal(inf.hasSynced(), false)
  fake.failWith = undefined
  await inf.waitForSync(AbortSignal.timeout(2000))
})

test('a refused list (403) is retried without the ClusterRole hint at first, with it once it persists, and syncs when allowed', async (t) => {
  fake.forbidden.add(`list ${SVC}`)
  fake.put(SVC, svc('a'))
  const lines: LogLine[] = []
  const inf = informer({ refusalGraceMs: 200 }, lines)
  t.after(() => inf.stop())
  await inf.start()
  assert.equal(inf.hasSynced(), false, 'start() resolves unsynced: the agent keeps serving')
  const warn = lines.find(l => l.level === 'warn')
  assert.match(warn?.msg ?? '', /refused \(403\); retrying, as an API server that just started refuses until its RBAC cache is loaded/)
  assert.doesNotMatch(JSON.stringify(warn), /ClusterRole/)
  await eventually('the persisting refusal is an error with the fix', () => lines.some(l => l.level === 'error'), 3000)
  const error = lines.find(l => l.level === 'error')
  assert.match(String(error?.fields?.err), /forbidden: cannot list resource "services" .* grant it in the ClusterRole/)
  assert.equal(lines.filter(l => l.level === 'error').length, 1, 'not repeated at every retry')
  fake.forbidden.clear()
  await inf.waitForSync(AbortSignal.timeout(2000))
  assert.equal(inf.get('default/a')?.metadata.name, 'a')
})

test('a refused watch is retried too; KubeForbiddenError still names the verb and resource', async (t) => {
  fake.forbidden.add(`watch ${SVC}`)
  const lines: LogLine[] = []
  const inf = informer({ refusalGraceMs: 0 }, lines)
  t.after(() => inf.stop())
  await inf.start()
  await eventually('logged', () => lines.some(l => l.level === 'error'), 3000)
  assert.ok(inf.stats().lastError instanceof KubeForbiddenError)
  assert.equal((inf.stats().lastError as KubeForbiddenError).verb, 'watch')
  assert.equal((inf.stats().lastError as KubeForbiddenError).resource, 'services')
})

test('startWithFallback: no EndpointSlice API → Endpoints informer', async (t) => {
  fake.notFound.add('/apis/discovery.k8s.io/')
  fake.put('/api/v1/endpoints', { metadata: { name: 'a', namespace: 'default' }, subsets: [{ addresses: [{ ip: '10.0.0.1' }] }] })
  const primary = informer<EndpointSlice>({ resource: RESOURCES.endpointSlices })
  const r = await startWithFallback(primary, () => informer<Endpoints>({ resource: RESOURCES.endpoints }))
  t.after(() => r.informer.stop())
  assert.equal(r.kind, 'fallback')
  assert.equal(r.informer.name, 'kube:endpoints')
  assert.equal(r.informer.get('default/a')?.metadata.name, 'a')

  fake.notFound.clear()
  const again = informer<EndpointSlice>({ resource: RESOURCES.endpointSlices })
  const r2 = await startWithFallback(again, () => informer<Endpoints>({ resource: RESOURCES.endpoints }))
  t.after(() => r2.informer.stop())
  assert.equal(r2.kind, 'primary')
})

test('transform narrows what is stored and what handlers see', async (t) => {
  fake.put(SVC, { ...svc('a'), status: { loadBalancer: { ingress: [{ hostname: 'x'.repeat(1000) }] } } })
  const inf = informer({ transform: s => ({ metadata: s.metadata, spec: { ports: s.spec.ports } }) })
  t.after(() => inf.stop())
  const added: Service[] = []
  inf.addHandlers({ onAdd: o => added.push(o) })
  await inf.start()
  assert.equal('status' in (inf.get('default/a') ?? {}), false)
  assert.equal(added[0], inf.get('default/a'))
})

test('resync re-delivers onUpdate(obj, obj); off by default', async (t) => {
  fake.put(SVC, svc('a'))
  const inf = informer({ resyncMs: 20 })
  t.after(() => inf.stop())
  const calls = track(inf)
  await inf.start()
  await eventually('resynced twice', () => calls.filter(c => c === 'resync a').length >= 2, 2000)

  const quiet = informer()
  t.after(() => quiet.stop())
  const qc = track(quiet)
  await quiet.start()
  await new Promise(resolve => setTimeout(resolve, 60))
  assert.deepEqual(qc, ['add a', 'synced'])
})

test('a throwing handler is logged and does not stop the informer', async (t) => {
  const lines: LogLine[] = []
  const inf = informer({}, lines)
  t.after(() => inf.stop())
  inf.addHandlers({ onAdd: () => { throw new Error('boom') } })
  const calls = track(inf)
  await inf.start()
  fake.put(SVC, svc('a'))
  await eventually('add delivered', () => calls.includes('add a'), 2000)
  assert.ok(lines.some(l => l.level === 'error' && l.msg === 'handler threw' && l.fields?.err === 'boom'))
})

test('stop() is idempotent, ends the watch, and rejects pending waitForSync', async () => {
  fake.failWith = 500
  const inf = informer()
  await inf.start()
  const pending = inf.waitForSync()
  await inf.stop()
  await inf.stop()
  await assert.rejects(pending, KubeInformerStoppedError)
  fake.failWith = undefined

  const ok = informer()
  await ok.start()
  await eventually('watching', () => fake.watcherCount() === 1, 2000)
  await ok.stop()
  await eventually('watch closed', () => fake.watcherCount() === 0, 2000)
  await ok.stop()
  assert.throws(() => ok.addHandlers({}), /before start/)
  const ac = new AbortController()
  const never = informer()
  const w = never.waitForSync(ac.signal)
  ac.abort(new Error('gave up'))
  await assert.rejects(w, /gave up/)
})
