// The status server and the metrics port (both node:http with the limits of
// STATUS_SERVER_LIMITS) under garbage, truncated, silent, dripping and
// oversized clients.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { STATUS_SERVER_LIMITS } from '../../src/observability/status-server.ts'
import { assertClosed, flood, httpGet, startAgent } from './agent.ts'
import type { Agent } from './agent.ts'

// Headers must arrive within headersTimeoutMs, checked every checkIntervalMs.
const HEADERS_MS = STATUS_SERVER_LIMITS.headersTimeoutMs
const CUT_MS = HEADERS_MS + STATUS_SERVER_LIMITS.checkIntervalMs
const MARGIN_MS = 2000

describe('HTTP listeners', () => {
  let agent: Agent

  before(async () => {
    agent = await startAgent()
    await httpGet(agent.ports.status, '/healthz')
    await httpGet(agent.ports.metrics, '/metrics')
    agent.markBaseline()
  })
  after(async () => { await agent?.stop() })

  for (const listener of [
    { name: 'status server', port: () => agent.ports.status, path: '/healthz', body: /^ok/ },
    { name: 'metrics port', port: () => agent.ports.metrics, path: '/metrics', body: /^edgemesh_servicemap_services 2$/m }
  ]) {
    describe(listener.name, () => {
      async function recovered (): Promise<void> {
        await agent.settled()
        const res = await httpGet(listener.port(), listener.path)
        assert.equal(res.status, 200)
        assert.match(res.body, listener.body)
      }

      test('200 connections of 4 KiB random bytes are all closed', async () => {
        const r = await flood(listener.port(), { connections: 200, send: () => randomBytes(4096), end: true, holdMs: CUT_MS + MARGIN_MS })
        assertClosed(r, 200, { maxMs: CUT_MS + MARGIN_MS })
        await recovered()
      })

      test('a request cut after `Host:`, then EOF: closed at once', async () => {
        const r = await flood(listener.port(), { connections: 200, send: () => Buffer.from('GET / HTTP/1.1\r\nHost:'), end: true, holdMs: CUT_MS })
        assertClosed(r, 200, { maxMs: 1000 })
        await recovered()
      })

      test('300 silent connections are closed within the 5 s headers timeout', async () => {
        const r = await flood(listener.port(), { connections: 300, holdMs: CUT_MS + MARGIN_MS })
        assertClosed(r, 300, { minMs: HEADERS_MS - 1000, maxMs: CUT_MS + MARGIN_MS })
        await recovered()
      })

      test('50 connections dripping a header a byte every 500 ms get 408 at the 5 s headers timeout', async () => {
        const r = await flood(listener.port(), { connections: 50, send: () => Buffer.from(`GET ${listener.path} HTTP/1.1\r\nX-Drip: `), drip: 0x61, holdMs: CUT_MS + MARGIN_MS })
        assertClosed(r, 50, { minMs: HEADERS_MS - 1000, maxMs: CUT_MS + MARGIN_MS })
        assert.deepEqual(new Set(r.replies.map(b => b.toString().split('\r\n')[0])), new Set(['HTTP/1.1 408 Request Timeout']))
        await recovered()
      })

      test('a 1 MiB header gets 431 and is closed at once', async () => {
        const request = Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nX-Big: '), Buffer.alloc(1024 * 1024, 0x61), Buffer.from('\r\n\r\n')])
        const r = await flood(listener.port(), { connections: 20, send: () => request, holdMs: CUT_MS })
        assertClosed(r, 20, { maxMs: 1000 })
        assert.deepEqual(new Set(r.replies.map(b => b.toString().split('\r\n')[0])), new Set(['HTTP/1.1 431 Request Header Fields Too Large']))
        await recovered()
      })
    })
  }
})
