// The DNS listeners (UDP and TCP on the bridge address) under garbage,
// truncated, silent, dripping and oversized clients.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { assertClosed, flood, startAgent } from './agent.ts'
import type { Agent } from './agent.ts'

const HAVE_DIG = (() => { try { execFileSync('dig', ['-v'], { stdio: 'ignore' }); return true } catch { return false } })()

// src/dns/server.ts: a silent connection is idle (tcpIdleTimeoutMs); a started query must arrive whole within tcpReadTimeoutMs.
const IDLE_MS = 10_000
const READ_MS = 2000
const MARGIN_MS = 2000

/** A query for hostname-svc.default.svc.cluster.local A (id 0x1234, RD). */
const QUERY = Buffer.concat([
  Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
  ...'hostname-svc.default.svc.cluster.local'.split('.').map(l => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
  Buffer.from([0, 0, 1, 0, 1])
])

describe('DNS', { skip: HAVE_DIG ? false : 'dig not installed (apt-get install dnsutils)' }, () => {
  let agent: Agent

  async function resolves (): Promise<void> {
    const answer = await new Promise<string>((resolve, reject) => {
      execFile('dig', ['@127.0.0.1', '-p', String(agent.ports.dns), '+short', '+tries=1', '+time=2', 'hostname-svc.default.svc.cluster.local'],
        (err, stdout) => { if (err !== null) reject(err); else resolve(stdout.trim()) })
    })
    assert.equal(answer, '10.96.0.100')
  }

  async function recovered (): Promise<void> {
    await agent.settled()
    await resolves()
  }

  before(async () => {
    agent = await startAgent()
    await resolves()
    agent.markBaseline()
  })
  after(async () => { await agent?.stop() })

  describe('over UDP', () => {
    test('20,000 random and truncated datagrams: names still resolve', async () => {
      const socket = createSocket('udp4')
      await new Promise<void>(resolve => socket.bind(0, '127.0.0.1', resolve))
      try {
        for (let i = 0; i < 20_000; i++) {
          // Every other one a real query cut short, the rest random lengths of random bytes.
          const datagram = i % 2 === 0 ? QUERY.subarray(0, randomInt(QUERY.length)) : randomBytes(randomInt(1, 1500))
          await new Promise<void>(resolve => socket.send(datagram, agent.ports.dns, '127.0.0.1', () => resolve()))
        }
        await resolves()
      } finally {
        socket.close()
      }
      await recovered()
    })
  })

  describe('over TCP', () => {
    test('200 connections of 4 KiB random bytes are all closed', async () => {
      const r = await flood(agent.ports.dns, { connections: 200, send: () => randomBytes(4096), end: true, holdMs: READ_MS + MARGIN_MS })
      assertClosed(r, 200, { maxMs: READ_MS + MARGIN_MS })
      await recovered()
    })

    test('a length prefix longer than the query, then EOF: closed at once', async () => {
      const r = await flood(agent.ports.dns, { connections: 200, send: () => Buffer.concat([Buffer.from([0, 64]), QUERY.subarray(0, 10)]), end: true, holdMs: READ_MS })
      assertClosed(r, 200, { maxMs: 1000 })
      await recovered()
    })

    test('300 silent connections are closed at the 10 s idle timeout', async () => {
      const r = await flood(agent.ports.dns, { connections: 300, holdMs: IDLE_MS + MARGIN_MS })
      assertClosed(r, 300, { minMs: IDLE_MS - 1000, maxMs: IDLE_MS + MARGIN_MS })
      await recovered()
    })

    test('50 connections dripping a query a byte every 500 ms are cut at the 2 s read deadline', async () => {
      const r = await flood(agent.ports.dns, { connections: 50, send: () => Buffer.from([0, QUERY.length]), drip: 0, holdMs: READ_MS + MARGIN_MS })
      assertClosed(r, 50, { minMs: READ_MS - 500, maxMs: READ_MS + MARGIN_MS })
      await recovered()
    })

    test('20 connections of four 64 KiB junk messages (the largest a DNS TCP message can be) are all released', async () => {
      // Four per connection are enough to reach the size limit; more only measured the allocator, whose
      // RSS outlived the case now and then (20 MiB of buffers against the 40 MB margin).
      const junk = Buffer.concat(Array.from({ length: 4 }, () => Buffer.concat([Buffer.from([0xff, 0xff]), randomBytes(0xffff)])))
      const r = await flood(agent.ports.dns, { connections: 20, send: () => junk, end: true, holdMs: READ_MS + MARGIN_MS })
      assertClosed(r, 20, { maxMs: READ_MS + MARGIN_MS })
      await recovered()
    })
  })
})
