import { test, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { Registry } from 'prom-client'
import { KubeClient } from '../../../src/kube/client.ts'
import type { KubeConnection } from '../../../src/kube/connection.ts'
import { EndpointSliceSource } from '../../../src/kube/endpoint-slice-source.ts'
import { KubeInformer } from '../../../src/kube/informer.ts'
import type { KubeInformerOptions } from '../../../src/kube/informer.ts'
import { KubeMetrics } from '../../../src/kube/metrics.ts'
import { RESOURCES } from '../../../src/kube/types.ts'
import type { Service } from '../../../src/kube/types.ts'
import { FakeApiServer } from '../../helpers/fake-apiserver.ts'
import { eventually } from '../../helpers/control-plane.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import { scrape } from '../../helpers/scrape.ts'

const SVC = '/api/v1/services'
const RESTARTS = 'edgemesh_kube_watch_restarts_total{resource="services"}'
const RELISTS = 'edgemesh_kube_relists_total{resource="services"}'
const AGE = 'edgemesh_kube_last_sync_age_seconds{resource="services"}'

function conn (server: string): KubeConnection {
  return { mode: 'EdgeMode', server, description: `metaServer ${server}`, tls: { insecureSkipTLSVerify: false }, qps: 1000, burst: 1000, requestedContentType: 'application/json' }
}

function svc (name: string): Service {
  return { metadata: { name, namespace: 'default' }, spec: { ports: [{ port: 80 }] } }
}

let fake: FakeApiServer
let client: KubeClient
let registry: Registry
let clock: number
let metrics: KubeMetrics

beforeEach(async () => {
  fake = await new FakeApiServer().listen()
  client = new KubeClient(conn(fake.url))
  registry = new Registry()
  clock = 1_000_000
  metrics = new KubeMetrics(registry, () => clock)
})
afterEach(async () => {
  client.close()
  await fake.close()
})

function informer (over: Partial<KubeInformerOptions<Service>> = {}): KubeInformer<Service> {
  return new KubeInformer<Service>({ resource: RESOURCES.services, backoff: { initialMs: 10, maxMs: 50, jitter: 0 }, watchTimeoutSeconds: 60, ...over },
    { client, logger: recordingLogger([]), metrics })
}

async function sample (series: string): Promise<number | undefined> {
  return (await scrape(registry)).get(series)
}

test('series exist from start; a watch the server ends counts one restart and no relist', async (t) => {
  fake.put(SVC, svc('a'))
  const inf = informer()
  t.after(() => inf.stop())
  assert.equal(await sample(RESTARTS), undefined, 'no series before start')
  await inf.start()
  assert.equal(await sample(RESTARTS), 0)
  assert.equal(await sample(RELISTS), 0)
  assert.equal(await sample(AGE), 0)

  await eventually('watching', () => fake.watcherCount() === 1, 2000)
  fake.closeWatches()
  await eventually('rewatched', () => inf.stats().watches === 2 && fake.watcherCount() === 1, 2000)
  assert.equal(await sample(RESTARTS), 1)
  assert.equal(await sample(RELISTS), 0)
})

test('a 410 Gone relists: the relist counter and the restart counter move', async (t) => {
  fake.put(SVC, svc('a'))
  const inf = informer()
  t.after(() => inf.stop())
  await inf.start()
  await eventually('watching', () => fake.watcherCount() === 1, 2000)
  fake.putSilently(SVC, svc('b'))
  fake.expiredBelow = fake.rv
  fake.closeWatches()
  await eventually('relisted', () => inf.get('default/b') !== undefined, 2000)
  await eventually('rewatched', () => fake.watcherCount() === 1, 2000)
  assert.equal(await sample(RELISTS), 1)
  // The watch the server closed, then the one that answered 410.
  assert.equal(await sample(RESTARTS), 2)
})

test('the age gauge grows at scrape time and is reset by a list or a watch event', async (t) => {
  fake.put(SVC, svc('a'))
  const inf = informer()
  t.after(() => inf.stop())
  await inf.start()
  await eventually('watching', () => fake.watcherCount() === 1, 2000)
  clock += 42_000
  assert.equal(await sample(AGE), 42)
  clock += 1000
  assert.equal(await sample(AGE), 43)
  fake.put(SVC, svc('b'))
  await eventually('event applied', () => inf.get('default/b') !== undefined, 2000)
  assert.equal(await sample(AGE), 0)
})

test('an unreachable server at start: the age counts from start; the first list is not a relist', async (t) => {
  fake.failWith = 503
  const inf = informer()
  t.after(() => inf.stop())
  await inf.start()
  await eventually('failing', () => inf.stats().errors >= 2, 2000)
  clock += 90_000
  assert.equal(await sample(AGE), 90)
  fake.failWith = undefined
  await inf.waitForSync(AbortSignal.timeout(2000))
  assert.equal(await sample(AGE), 0)
  assert.equal(await sample(RELISTS), 0)
})

test('one KubeMetrics serves several informers; the EndpointSlice fallback leaves only the endpoints series', async (t) => {
  fake.notFound.add('/apis/discovery.k8s.io/')
  fake.put('/api/v1/endpoints', { metadata: { name: 'a', namespace: 'default' }, subsets: [{ addresses: [{ ip: '10.0.0.1' }] }] })
  const services = informer()
  const slices = new EndpointSliceSource({ client, logger: recordingLogger([]), metrics }, { transform: s => s })
  t.after(async () => { await services.stop(); await slices.stop() })
  await services.start()
  await slices.start()
  assert.equal(slices.usingEndpointsFallback(), true)
  const s = await scrape(registry)
  assert.equal(s.get(RELISTS), 0)
  assert.equal(s.get('edgemesh_kube_relists_total{resource="endpoints"}'), 0)
  assert.equal(s.get('edgemesh_kube_last_sync_age_seconds{resource="endpoints"}'), 0)
  assert.equal([...s.keys()].some(k => k.includes('endpointslices')), false)
})
