import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { Registry } from 'prom-client'
import { ServiceMap } from '../../../src/servicemap/service-map.ts'
import type { StateStore } from '../../../src/servicemap/state-store.ts'
import type { ServiceChange, ServiceEntry, ServiceKey } from '../../../src/servicemap/types.ts'
import type { CompactService, CompactSlice } from '../../../src/servicemap/build.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { FakeInformer } from '../../helpers/fake-informer.ts'
import { scrape } from '../../helpers/scrape.ts'
import { cslice, csvc } from './fixtures.ts'

const SERVICES = 'edgemesh_servicemap_services'
const SYNCED = 'edgemesh_servicemap_synced'
const UPSERTS = 'edgemesh_servicemap_changes_total{type="upsert"}'
const DELETES = 'edgemesh_servicemap_changes_total{type="delete"}'
const AGE = 'edgemesh_servicemap_last_change_age_seconds'
const source = (s: string): string => `edgemesh_servicemap_source{source="${s}"}`

function setup (persistence?: StateStore): { map: ServiceMap, registry: Registry, services: FakeInformer<CompactService>, slices: FakeInformer<CompactSlice>, published: () => Promise<void> } {
  const registry = new Registry()
  const services = new FakeInformer<CompactService>('s', [csvc('web', { clusterIP: '10.96.0.5' }), csvc('db', { clusterIP: '10.96.0.6' })], false)
  const slices = new FakeInformer<CompactSlice>('e', [cslice('web-a', 'web', [{ addresses: ['10.0.0.1'] }])], false)
  const map = new ServiceMap({ logger: noopLogger, services, endpointSlices: slices, metrics: registry, ...(persistence !== undefined ? { persistence } : {}) },
    { serviceFilterMode: 'FilterIfLabelExists', syncTimeoutMs: 20 })
  let wake: (() => void) | undefined
  map.subscribe((_: readonly ServiceChange[]) => wake?.())
  const published = (): Promise<void> => new Promise(resolve => { wake = resolve })
  return { map, registry, services, slices, published }
}

test('the service gauge, sync state and change counters follow the map', async (t) => {
  const { map, registry, services, slices, published } = setup()
  t.after(() => map.stop())
  await map.start()
  let s = await scrape(registry)
  assert.equal(s.get(SERVICES), 0)
  assert.equal(s.get(SYNCED), 0)
  assert.equal(s.get(source('none')), 1)
  assert.equal(s.get(UPSERTS), 0)

  let next = published()
  services.sync()
  slices.sync()
  await next
  s = await scrape(registry)
  assert.equal(s.get(SERVICES), 2)
  assert.equal(s.get(SYNCED), 1)
  assert.equal(s.get(source('live')), 1)
  assert.equal(s.get(source('none')), 0)
  assert.equal(s.get(UPSERTS), 2)
  assert.equal(s.get(DELETES), 0)

  next = published()
  services.upsert(csvc('cache', { clusterIP: '10.96.0.7' }))
  await next
  next = published()
  services.remove('default/db')
  await next
  s = await scrape(registry)
  assert.equal(s.get(SERVICES), 2)
  assert.equal(s.get(UPSERTS), 3)
  assert.equal(s.get(DELETES), 1)
})

test('the last-change age grows between changes and drops when one is published', async (t) => {
  const { map, registry, services, slices, published } = setup()
  t.after(() => map.stop())
  await map.start()
  let next = published()
  services.sync()
  slices.sync()
  await next
  await delay(120)
  const before = (await scrape(registry)).get(AGE) ?? -1
  assert.ok(before >= 0.1, `age ${before} after 120 ms`)
  next = published()
  slices.upsert(cslice('web-a', 'web', [{ addresses: ['10.0.0.2'] }]))
  await next
  const after = (await scrape(registry)).get(AGE) ?? -1
  assert.ok(after >= 0 && after < before, `age ${after} after a change (was ${before})`)
})

test('persisted state counts as synced, with source persisted', async (t) => {
  const entries = new Map<ServiceKey, ServiceEntry>([['default/old', { service: { namespace: 'default', name: 'old', type: 'ClusterIP', clusterIPs: ['10.96.0.9'], headless: false, externalIPs: [], loadBalancerIPs: [], ports: [], sessionAffinity: 'None', affinityTimeoutSeconds: 0, labels: {} }, endpoints: [] }]])
  const store: StateStore = { description: 'memory', load: async () => ({ savedAt: new Date(0).toISOString(), entries }), save: async () => {} }
  const { map, registry, published } = setup(store)
  t.after(() => map.stop())
  const next = published()
  await map.start()
  await next
  const s = await scrape(registry)
  assert.equal(s.get(SYNCED), 1)
  assert.equal(s.get(source('persisted')), 1)
  assert.equal(s.get(SERVICES), 1)
  assert.equal(s.get(UPSERTS), 1)
})
