import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { PerformanceObserver, constants } from 'node:perf_hooks'
import { Registry } from 'prom-client'
import { BufferReclaimer, youngGenerationCollector } from '../../../src/net/buffer-reclaimer.ts'

test('tracked streams are counted together: one collection per everyBytes, counted in the metric; the data still reaches the pipe', async () => {
  const metrics = new Registry()
  let collections = 0
  const reclaimer = new BufferReclaimer({ metrics, collect: () => { collections++ } }, { everyBytes: 1000 })
  const a = new PassThrough()
  const b = new PassThrough()
  const sink: Buffer[] = []
  const out = new PassThrough()
  out.on('data', (c: Buffer) => sink.push(c))
  reclaimer.track(a)
  reclaimer.track(b)
  a.pipe(out, { end: false })
  b.pipe(out, { end: false })
  for (let i = 0; i < 10; i++) { a.write(Buffer.alloc(300, 1)); b.write(Buffer.alloc(300, 2)) }
  await new Promise(resolve => setImmediate(resolve))
  // 6000 bytes, a collection each time the count passes 1000 (then it starts again from 0).
  assert.equal(collections, 5)
  assert.equal(Buffer.concat(sink).length, 6000)
  const counted = (await metrics.getSingleMetric('edgemesh_net_buffer_collections_total')?.get())?.values[0]?.value
  assert.equal(counted, 5)
})

test('bytes a protocol stack copies itself count towards the same total as tracked streams', () => {
  let collections = 0
  const reclaimer = new BufferReclaimer({ collect: () => { collections++ } }, { everyBytes: 1000 })
  const a = new PassThrough()
  reclaimer.track(a)
  a.write(Buffer.alloc(600))
  reclaimer.add(300)
  assert.equal(collections, 0)
  reclaimer.add(100)
  assert.equal(collections, 1)
  reclaimer.add(999)
  assert.equal(collections, 1)
})

test('the collector asks V8 for a young-generation collection (a real one, seen by the gc observer)', async () => {
  const collect = youngGenerationCollector()
  assert.ok(collect !== undefined, 'V8 accepts --expose-gc at runtime')
  const kinds: number[] = []
  const observer = new PerformanceObserver(list => { for (const e of list.getEntries()) kinds.push((e as unknown as { detail: { kind: number } }).detail.kind) })
  observer.observe({ entryTypes: ['gc'] })
  collect()
  await new Promise(resolve => setTimeout(resolve, 50))
  observer.disconnect()
  assert.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR), `gc kinds seen: ${kinds.join(',')}`)
  // The main context does not get a global gc().
  assert.equal((globalThis as { gc?: unknown }).gc, undefined)
})
