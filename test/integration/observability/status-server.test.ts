import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Counter, Registry } from 'prom-client'
import { STATUS_SERVER_LIMITS, StatusServer } from '../../../src/observability/status-server.ts'
import type { StatusServerInit, StatusSource } from '../../../src/observability/status-server.ts'
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

/** A raw client that sends a request line, then one header byte every `everyMs` until the server closes; nothing at all when `everyMs` is 0. */
async function drip (port: number, everyMs: number, giveUpMs: number): Promise<{ closedAfterMs: number | undefined, reply: string }> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const started = Date.now()
  let reply = ''
  socket.setEncoding('utf8').on('data', (d: string) => { reply += d })
  socket.on('error', () => {})
  if (everyMs > 0) socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ')
  const timer = setInterval(() => { if (!socket.destroyed && everyMs > 0) socket.write('a') }, everyMs || 1000)
  try {
    const closed = await Promise.race([once(socket, 'close').then(() => true), sleep(giveUpMs).then(() => false)])
    return { closedAfterMs: closed ? Date.now() - started : undefined, reply }
  } finally {
    clearInterval(timer)
    socket.destroy()
  }
}

function quietServer (limits: StatusServerInit['limits']): StatusServer {
  return new StatusServer({
    logger: recordingLogger([]),
    metrics: new Registry(),
    source: () => ({ notReady: () => [], status: () => ({ ready: true, notReady: [], services: { count: 0, source: 'none', synced: false } }) })
  }, { address: '127.0.0.1', port: 0, limits })
}

test('a client dripping its headers is cut within the headers timeout; others are served meanwhile', async () => {
  const server = quietServer({ headersTimeoutMs: 400, requestTimeoutMs: 800, checkIntervalMs: 100 })
  await server.start()
  try {
    const port = server.port() as number
    const slow = drip(port, 50, 3000)
    assert.equal((await get(port, '/healthz')).status, 200)
    const { closedAfterMs, reply } = await slow
    assert.ok(closedAfterMs !== undefined, 'the slow client is still connected after 3 s')
    assert.ok(closedAfterMs >= 300 && closedAfterMs < 1500, `cut after ${closedAfterMs} ms`)
    assert.match(reply, /^HTTP\/1\.1 408 /)
    assert.equal((await get(port, '/healthz')).status, 200)
  } finally {
    await server.stop()
  }
})

test('a client that connects and sends nothing is cut too', async () => {
  const server = quietServer({ headersTimeoutMs: 400, requestTimeoutMs: 800, checkIntervalMs: 100 })
  await server.start()
  try {
    const { closedAfterMs } = await drip(server.port() as number, 0, 3000)
    assert.ok(closedAfterMs !== undefined && closedAfterMs < 1500, `cut after ${String(closedAfterMs)} ms`)
  } finally {
    await server.stop()
  }
})

test('connections beyond the cap are refused; freed slots serve again', async () => {
  const server = quietServer({ maxConnections: 2 })
  await server.start()
  const held: Socket[] = []
  try {
    const port = server.port() as number
    for (let i = 0; i < 2; i++) {
      const s = connect(port, '127.0.0.1')
      s.on('error', () => {})
      await once(s, 'connect')
      held.push(s)
    }
    const extra = connect(port, '127.0.0.1')
    extra.on('error', () => {})
    const refused = await Promise.race([once(extra, 'close').then(() => true), sleep(2000).then(() => false)])
    extra.destroy()
    assert.ok(refused, 'a third connection was kept open')
    for (const s of held.splice(0)) s.destroy()
    // The server counts the freed connections asynchronously.
    await sleep(100)
    assert.equal((await get(port, '/healthz')).status, 200)
  } finally {
    for (const s of held) s.destroy()
    await server.stop()
  }
})

test('production limits keep a slow client within seconds', () => {
  const l = STATUS_SERVER_LIMITS
  assert.ok(l.headersTimeoutMs <= 5000 && l.requestTimeoutMs <= 10_000 && l.headersTimeoutMs <= l.requestTimeoutMs)
  // Node checks both timeouts on this interval: it bounds how late the cut comes.
  assert.ok(l.checkIntervalMs <= 1000)
  assert.ok(l.maxConnections > 0 && l.maxConnections <= 64)
})
