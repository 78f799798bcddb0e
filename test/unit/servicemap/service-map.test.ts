import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile, readFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ServiceMap } from '../../../src/servicemap/service-map.ts'
import { FileStateStore } from '../../../src/servicemap/state-store.ts'
import type { ServiceChange } from '../../../src/servicemap/types.ts'
import type { CompactService, CompactSlice } from '../../../src/servicemap/build.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import type { Logger, LogFields } from '../../../src/observability/logger.ts'
import { FakeInformer } from '../../helpers/fake-informer.ts'
import { cslice, csvc } from './fixtures.ts'

function recorder (map: ServiceMap): { batches: ServiceChange[][], next: () => Promise<ServiceChange[]> } {
  const batches: ServiceChange[][] = []
  let wake: (() => void) | undefined
  map.subscribe(c => { batches.push([...c]); wake?.() })
  let read = 0
  return {
    batches,
    next: async () => {
      const deadline = AbortSignal.timeout(2000)
      while (batches.length <= read) {
        await new Promise<void>((resolve, reject) => {
          wake = resolve
          deadline.addEventListener('abort', () => reject(new Error('no change batch within 2 s')), { once: true })
        })
      }
      return batches[read++] as ServiceChange[]
    }
  }
}

function memoryLogger (): Logger & { lines: Array<{ level: string, msg: string, fields?: LogFields }> } {
  const lines: Array<{ level: string, msg: string, fields?: LogFields }> = []
  const make = (): Logger => ({
    debug: (msg, fields) => lines.push({ level: 'debug', msg, fields }),
    info: (msg, fields) => lines.push({ level: 'info', msg, fields }),
    warn: (msg, fields) => lines.push({ level: 'warn', msg, fields }),
    error: (msg, fields) => lines.push({ level: 'error', msg, fields }),
    forComponent: () => make(),
    setLevel: () => {}
  })
  return Object.assign(make(), { lines })
}

test('publishes nothing before sync, then the full set, then one service per change', async () => {
  const services = new FakeInformer<CompactService>('s', [csvc('web', { clusterIP: '10.96.0.5' }), csvc('db', { clusterIP: 'None' })], false)
  const slices = new FakeInformer<CompactSlice>('e', [cslice('web-a', 'web', [{ addresses: ['10.0.0.1'], nodeName: 'n1' }])], false)
  const map = new ServiceMap({ logger: noopLogger, services, endpointSlices: slices }, { serviceFilterMode: 'FilterIfLabelExists' })
  const r = recorder(map)
  await map.start()
  services.sync()
  assert.equal(r.batches.length, 0, 'one input synced is not enough')
  assert.equal(map.hasSynced(), false)
  slices.sync()
  const initial = await r.next()
  assert.deepEqual(initial.map(c => [c.type, c.key]).sort(), [['upsert', 'default/db'], ['upsert', 'default/web']])
  assert.equal(map.byClusterIP('10.96.0.5')?.endpoints[0]?.ip, '10.0.0.1')
  assert.equal(map.source(), 'live')

  slices.upsert(cslice('web-a', 'web', [{ addresses: ['10.0.0.2'], nodeName: 'n2' }]))
  const update = await r.next()
  assert.equal(update.length, 1)
  assert.equal(update[0]?.type, 'upsert')
  assert.equal(update[0]?.type === 'upsert' ? update[0].previous?.endpoints[0]?.ip : '', '10.0.0.1')
  assert.equal(map.get('default/web')?.endpoints[0]?.ip, '10.0.0.2')

  // A second slice for the same service, then a slice moved to another service.
  slices.upsert(cslice('web-b', 'web', [{ addresses: ['10.0.0.3'] }]))
  assert.deepEqual((await r.next()).map(c => c.key), ['default/web'])
  assert.deepEqual(map.get('default/web')?.endpoints.map(e => e.ip), ['10.0.0.2', '10.0.0.3'])
  slices.upsert(cslice('web-b', 'db', [{ addresses: ['10.0.0.3'], hostname: 'db-0' }]))
  assert.deepEqual((await r.next()).map(c => c.key).sort(), ['default/db', 'default/web'])
  assert.equal(map.get('default/db')?.endpoints[0]?.hostname, 'db-0')

  services.remove('default/web')
  const del = await r.next()
  assert.deepEqual(del.map(c => [c.type, c.key]), [['delete', 'default/web']])
  assert.equal(map.byClusterIP('10.96.0.5'), undefined)

  // An update that changes nothing the model carries publishes nothing.
  const before = r.batches.length
  services.upsert({ ...csvc('db', { clusterIP: 'None' }), metadata: { name: 'db', namespace: 'default', resourceVersion: '99' } })
  await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(r.batches.length, before)

  await map.stop()
  assert.ok(services.stopped && slices.stopped)
  await map.stop()
})

test('an empty cluster still reports synced with an empty batch', async () => {
  const map = new ServiceMap({ logger: noopLogger, services: new FakeInformer<CompactService>(), endpointSlices: new FakeInformer<CompactSlice>() }, { serviceFilterMode: 'FilterIfLabelExists' })
  const r = recorder(map)
  await map.start()
  assert.deepEqual(await r.next(), [])
  assert.equal(map.hasSynced(), true)
  await map.stop()
})

test('edge autonomy: persisted state served when the API is unreachable, replaced by live data with a diff', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-sm-'))
  try {
    const file = join(dir, 'state', 'servicemap.json')
    // 1. A live run persists its state.
    const live = new ServiceMap({
      logger: noopLogger,
      services: new FakeInformer<CompactService>('s', [csvc('web', { clusterIP: '10.96.0.5' }), csvc('gone', { clusterIP: '10.96.0.6' })]),
      endpointSlices: new FakeInformer<CompactSlice>('e', [cslice('web-a', 'web', [{ addresses: ['10.0.0.1'] }])]),
      persistence: new FileStateStore(file)
    }, { serviceFilterMode: 'FilterIfLabelExists', persistIntervalMs: 0 })
    await live.start()
    await live.stop()
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    assert.equal(JSON.parse(await readFile(file, 'utf8')).services.length, 2)

    // 2. The API server is unreachable: informers never sync.
    const services = new FakeInformer<CompactService>('s', [csvc('web', { clusterIP: '10.96.0.5' }), csvc('new', { clusterIP: '10.96.0.7' })], false)
    const slices = new FakeInformer<CompactSlice>('e', [cslice('web-a', 'web', [{ addresses: ['10.0.0.2'] }])], false)
    const log = memoryLogger()
    const map = new ServiceMap({ logger: log, services, endpointSlices: slices, persistence: new FileStateStore(file) },
      { serviceFilterMode: 'FilterIfLabelExists', syncTimeoutMs: 20 })
    const r = recorder(map)
    await map.start()
    const served = await r.next()
    assert.deepEqual(served.map(c => c.key).sort(), ['default/gone', 'default/web'])
    assert.equal(map.source(), 'persisted')
    assert.equal(map.byClusterIP('10.96.0.5')?.endpoints[0]?.ip, '10.0.0.1')
    assert.ok(log.lines.some(l => l.level === 'warn' && l.msg === 'API server unreachable; serving persisted state' && l.fields?.services === 2))

    // 3. The API comes back: the published diff replaces the persisted view.
    services.sync()
    slices.sync()
    const diff = await r.next()
    assert.deepEqual(diff.map(c => [c.type, c.key]).sort(), [['delete', 'default/gone'], ['upsert', 'default/new'], ['upsert', 'default/web']])
    assert.equal(map.source(), 'live')
    assert.equal(map.get('default/web')?.endpoints[0]?.ip, '10.0.0.2')
    assert.ok(log.lines.some(l => l.msg === 'live state synced; replaced persisted state'))
    await map.stop()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a corrupt state file is reported, never fatal', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-sm-'))
  try {
    const file = join(dir, 'servicemap.json')
    await writeFile(file, '{"version": 1, "savedAt": "x", "serv')
    const log = memoryLogger()
    const services = new FakeInformer<CompactService>('s', [], false)
    const map = new ServiceMap({ logger: log, services, endpointSlices: new FakeInformer<CompactSlice>('e', [], false), persistence: new FileStateStore(file) },
      { serviceFilterMode: 'FilterIfLabelExists', syncTimeoutMs: 10 })
    await map.start()
    const deadline = Date.now() + 2000
    while (!log.lines.some(l => l.msg.startsWith('persisted state unusable')) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
    const line = log.lines.find(l => l.msg.startsWith('persisted state unusable'))
    assert.equal(line?.fields?.file, file)
    assert.match(String(line?.fields?.err), /is not valid JSON/)
    assert.equal(map.hasSynced(), false)
    await map.stop()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('stop waits for a state write in flight', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-sm-'))
  try {
    let release: () => void = () => {}
    const saves = { count: 0 }
    const store = {
      description: join(dir, 'x.json'),
      async load () { return undefined },
      async save () { saves.count++; await new Promise<void>(resolve => { release = resolve }) }
    }
    const map = new ServiceMap({ logger: noopLogger, services: new FakeInformer<CompactService>('s', [csvc('web')]), endpointSlices: new FakeInformer<CompactSlice>(), persistence: store },
      { serviceFilterMode: 'FilterIfLabelExists', persistIntervalMs: 0 })
    await map.start()
    const deadline = Date.now() + 2000
    while (saves.count === 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 2))
    assert.equal(saves.count, 1, 'a save started after the first sync')
    let stopped = false
    const stopping = map.stop().then(() => { stopped = true })
    await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal(stopped, false, 'stop is still waiting for the write')
    release()
    await stopping
    assert.equal(stopped, true)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
