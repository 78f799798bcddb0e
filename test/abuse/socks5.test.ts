// The SOCKS5 listener under garbage, truncated, silent, dripping and
// oversized clients.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import type { Server } from 'node:net'
import { roundTrip, startEcho } from '../helpers/net.ts'
import { assertClosed, flood, NODE_NAME, startAgent } from './agent.ts'
import type { Agent } from './agent.ts'

// src/proxy/socks5.ts: greeting and request must arrive within handshakeTimeoutMs.
const HANDSHAKE_MS = 10_000
const MARGIN_MS = 2000

const GREETING = Buffer.from([0x05, 0x01, 0x00])

function connectRequest (host: Buffer, port: number): Buffer {
  return Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, host.length]), host, Buffer.from([port >> 8, port & 0xff])])
}

describe('SOCKS5', () => {
  let agent: Agent
  let echo: Server
  let echoPort: number

  /** A CONNECT to this node's name reaches a port on it. */
  async function connectsToTheNode (): Promise<void> {
    const socket = connect({ host: '127.0.0.1', port: agent.ports.socks5 })
    socket.write(Buffer.concat([GREETING, connectRequest(Buffer.from(NODE_NAME), echoPort)]))
    const out = await roundTrip(socket, 'through socks5')
    assert.deepEqual([...out.subarray(0, 4)], [0x05, 0x00, 0x05, 0x00], 'no auth, then succeeded')
    assert.equal(out.subarray(12).toString(), 'through socks5')
  }

  async function recovered (): Promise<void> {
    await agent.settled()
    await connectsToTheNode()
  }

  before(async () => {
    ;({ server: echo, port: echoPort } = await startEcho())
    agent = await startAgent()
    await connectsToTheNode()
    agent.markBaseline()
  })
  after(async () => {
    await agent?.stop()
    echo?.close()
  })

  test('200 connections of 4 KiB random bytes are all closed', async () => {
    const r = await flood(agent.ports.socks5, { connections: 200, send: () => randomBytes(4096), end: true, holdMs: HANDSHAKE_MS + MARGIN_MS })
    assertClosed(r, 200, { maxMs: HANDSHAKE_MS + MARGIN_MS })
    await recovered()
  })

  test('a greeting cut after `05 01`, then EOF: closed at once', async () => {
    const r = await flood(agent.ports.socks5, { connections: 200, send: () => Buffer.from([0x05, 0x01]), end: true, holdMs: HANDSHAKE_MS })
    assertClosed(r, 200, { maxMs: 1000 })
    await recovered()
  })

  test('300 silent connections are closed within the 10 s handshake deadline', async () => {
    const r = await flood(agent.ports.socks5, { connections: 300, holdMs: HANDSHAKE_MS + MARGIN_MS })
    assertClosed(r, 300, { minMs: HANDSHAKE_MS - 1000, maxMs: HANDSHAKE_MS + MARGIN_MS })
    await recovered()
  })

  test('50 connections dripping a 255-method greeting a byte every 500 ms are cut at the 10 s deadline', async () => {
    const r = await flood(agent.ports.socks5, { connections: 50, send: () => Buffer.from([0x05, 0xff]), drip: 0x01, holdMs: HANDSHAKE_MS + MARGIN_MS })
    assertClosed(r, 50, { minMs: HANDSHAKE_MS - 1000, maxMs: HANDSHAKE_MS + MARGIN_MS })
    await recovered()
  })

  test('a CONNECT to a 255-byte name followed by 1 MiB: refused with 04, and released', async () => {
    const request = Buffer.concat([GREETING, connectRequest(Buffer.alloc(255, 'n'), 80), randomBytes(1024 * 1024)])
    const r = await flood(agent.ports.socks5, { connections: 20, send: () => request, holdMs: HANDSHAKE_MS })
    assertClosed(r, 20, { maxMs: 2000 })
    // No API server to ask for another node's address: host unreachable.
    for (const reply of r.replies) assert.deepEqual([...reply.subarray(0, 4)], [0x05, 0x00, 0x05, 0x04])
    await recovered()
  })
})
