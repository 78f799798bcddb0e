import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Counter, Registry } from 'prom-client'
import { StatusServer } from '../../../src/observability/status-server.ts'
import type { StatusSource } from '../../../src/observability/status-server.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'

async function get (port: number, path: string): Promise<{ status: number, body: string, type: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`)
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' }
}

test('readyz names what is not ready; healthz, metrics and status answer', async () => {
  const metrics = new Registry()
  new Counter({ name: 'edgemesh_test_total', help: 'A test counter.', registers: [metrics] }).inc(3)
  let waiting = ['dns', 'proxy']
  const server = new StatusServer({
    logger: recordingLogger([]),
    metrics,
    source: () => ({ notReady: () => waiting, status: () => ({ ready: waiting.length === 0, notReady: waiting, services: { count: 7, source: 'live', synced: true } }) })
  }, { address: '127.0.0.1', port: 0 })
  await server.start()
  try {
    const port = server.port() as number
    assert.deepEqual(await get(port, '/healthz'), { status: 200, body: 'ok\n', type: 'text/plain; charset=utf-8' })
    const notReady = await get(port, '/readyz')
    assert.equal(notReady.status, 503)
    assert.equal(notReady.body, 'not ready: dns, proxy\n')
    waiting = []
    assert.equal((await get(port, '/readyz')).status, 200)
    const m = await get(port, '/metrics')
    assert.match(m.body, /^edgemesh_test_total 3$/m)
    assert.match(m.type, /text\/plain/)
    assert.deepEqual(JSON.parse((await get(port, '/status')).body), { ready: true, notReady: [], services: { count: 7, source: 'live', synced: true } })
    assert.equal((await get(port, '/nope')).status, 404)
  } finally {
    await server.stop()
  }
})

test('a port in use is logged and does not stop the agent', async () => {
  const metrics = new Registry()
  const source = (): StatusSource => ({ notReady: () => [], status: () => ({ ready: true, notReady: [], services: { count: 0, source: 'none', synced: false } }) })
  const first = new StatusServer({ logger: recordingLogger([]), metrics, source }, { address: '127.0.0.1', port: 0 })
  await first.start()
  const lines: LogLine[] = []
  const second = new StatusServer({ logger: recordingLogger(lines), metrics, source }, { address: '127.0.0.1', port: first.port() as number })
  try {
    await second.start()
    assert.equal(second.port(), undefined)
    assert.ok(lines.some(l => l.level === 'error' && l.msg === 'status server not started'))
  } finally {
    await first.stop()
    await second.stop()
  }
})

test('POST /loglevel changes the level at runtime; a bad level is refused', async () => {
  let level = 'info'
  const server = new StatusServer({
    logger: recordingLogger([]),
    metrics: new Registry(),
    source: () => ({ notReady: () => [], status: () => ({ ready: true, notReady: [], services: { count: 0, source: 'none', synced: false } }), setLogLevel: (l: string) => { if (!['debug', 'info'].includes(l)) return false; level = l; return true } })
  }, { address: '127.0.0.1', port: 0 })
  await server.start()
  try {
    const port = server.port() as number
    const ok = await fetch(`http://127.0.0.1:${port}/loglevel`, { method: 'POST', body: 'debug\n' })
    assert.equal(ok.status, 200)
    assert.equal(level, 'debug')
    const bad = await fetch(`http://127.0.0.1:${port}/loglevel`, { method: 'POST', body: 'loud' })
    assert.equal(bad.status, 400)
    assert.equal(level, 'debug')
  } finally {
    await server.stop()
  }
})
