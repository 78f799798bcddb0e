// The data path port (20008), as every agent serves it (TLS) and as a relay
// serves it (park and join requests, 'R' first), under garbage, truncated,
// silent, dripping and oversized clients.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { Server } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { Registry } from 'prom-client'
import { DataPath } from '../../src/datapath/datapath.ts'
import type { PeerRoute } from '../../src/datapath/datapath.ts'
import { RELAY_MAGIC } from '../../src/datapath/wire.ts'
import { noopLogger } from '../../src/observability/logger.ts'
import { eventually } from '../helpers/control-plane.ts'
import { roundTrip, startEcho } from '../helpers/net.ts'
import { assertClosed, flood, NODE_NAME, startAgent } from './agent.ts'
import type { Agent } from './agent.ts'

// src/datapath/admission.ts: a connection has handshakeTimeoutMs to prove the PSK.
const HANDSHAKE_MS = 5000
const MARGIN_MS = 2000

describe('data path port', () => {
  let agent: Agent
  let echo: Server
  let echoPort: number

  async function peer (nodeName: string): Promise<DataPath> {
    // No pool: nothing of ours stays connected to the agent between cases.
    const d = new DataPath({ logger: noopLogger, metrics: new Registry() }, { nodeName, port: 0, listenHost: '127.0.0.1', pskFile: agent.pskFile, isRelay: false, poolSize: 0 })
    await d.start()
    return d
  }

  async function carries (from: DataPath, route: PeerRoute): Promise<void> {
    const { socket } = await from.dial(route, { ip: '127.0.0.1', port: echoPort })
    assert.equal((await roundTrip(socket, 'through the data path')).toString(), 'through the data path')
  }

  /** A TLS client without the PSK fails its handshake and is closed; a peer with it reaches a port on the node. */
  async function servesOnlyPeers (): Promise<void> {
    const stranger = tlsConnect({
      host: '127.0.0.1',
      port: agent.ports.dataPath,
      minVersion: 'TLSv1.3',
      pskCallback: () => ({ psk: randomBytes(32), identity: `stranger>${NODE_NAME}` }),
      checkServerIdentity: () => undefined
    })
    const outcome = await new Promise<string>(resolve => {
      const timer = setTimeout(() => resolve('no answer within 3 s'), 3000)
      stranger.once('secureConnect', () => resolve('handshake completed'))
      stranger.once('close', () => { clearTimeout(timer); resolve('refused') })
      stranger.on('error', () => {})
    })
    stranger.destroy()
    assert.equal(outcome, 'refused')
    const d = await peer('abuse-peer')
    try {
      await carries(d, { nodeName: NODE_NAME, direct: [{ host: '127.0.0.1', port: agent.ports.dataPath }], relays: [] })
    } finally {
      await d.stop()
    }
  }

  /** A node parks on the relay and another reaches it through the relay. */
  async function relays (): Promise<void> {
    const relay = { nodeName: NODE_NAME, address: { host: '127.0.0.1', port: agent.ports.dataPath } }
    const parked = await peer('abuse-parked')
    const joiner = await peer('abuse-joiner')
    try {
      parked.setRelays([relay])
      // Parking takes a round trip: until then the relay answers that the node holds no reservation.
      await eventually('a connection through the relay', async () => {
        try {
          await carries(joiner, { nodeName: 'abuse-parked', direct: [], relays: [relay] })
          return true
        } catch {
          return false
        }
      }, 5000, 100)
    } finally {
      // stop() leaves connections parked on relays open: drop the relay first.
      parked.setRelays([])
      await parked.stop()
      await joiner.stop()
    }
  }

  before(async () => {
    ;({ server: echo, port: echoPort } = await startEcho())
    // identity: secure runs no data path.
    agent = await startAgent({ identity: 'compat' })
    await servesOnlyPeers()
    await relays()
    agent.markBaseline()
  })
  after(async () => {
    await agent?.stop()
    echo?.close()
  })

  describe('TLS', () => {
    async function recovered (): Promise<void> {
      await agent.settled()
      await servesOnlyPeers()
    }

    test('200 connections of 4 KiB random bytes are all closed', async () => {
      const r = await flood(agent.ports.dataPath, { connections: 200, send: () => randomBytes(4096), end: true, holdMs: HANDSHAKE_MS + MARGIN_MS })
      assertClosed(r, 200, { maxMs: HANDSHAKE_MS + MARGIN_MS })
      await recovered()
    })

    test('a TLS record header `16 03 01`, then EOF: closed at once', async () => {
      const r = await flood(agent.ports.dataPath, { connections: 200, send: () => Buffer.from([0x16, 0x03, 0x01]), end: true, holdMs: HANDSHAKE_MS })
      assertClosed(r, 200, { maxMs: 1000 })
      await recovered()
    })

    // Silent connections look the same to an agent and to a relay: one case for both.
    test('300 silent connections are closed within the 5 s handshake deadline', async () => {
      const r = await flood(agent.ports.dataPath, { connections: 300, holdMs: HANDSHAKE_MS + MARGIN_MS })
      assertClosed(r, 300, { minMs: HANDSHAKE_MS - 1000, maxMs: HANDSHAKE_MS + MARGIN_MS })
      await recovered()
    })

    test('50 connections dripping a ClientHello a byte every 500 ms are cut at the 5 s handshake deadline', async () => {
      // A record of 512 bytes announced, a ClientHello begun: the TLS parser waits for the rest.
      const start = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
      const r = await flood(agent.ports.dataPath, { connections: 50, send: () => start, drip: 0x00, holdMs: HANDSHAKE_MS + MARGIN_MS })
      assertClosed(r, 50, { minMs: HANDSHAKE_MS - 1000, maxMs: HANDSHAKE_MS + MARGIN_MS })
      await recovered()
    })

    test('a TLS record of 64 KiB followed by 1 MiB of junk: closed at once', async () => {
      const junk = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), randomBytes(1024 * 1024)])
      const r = await flood(agent.ports.dataPath, { connections: 20, send: () => junk, holdMs: HANDSHAKE_MS })
      assertClosed(r, 20, { maxMs: 1000 })
      await recovered()
    })
  })

  describe('relay', () => {
    async function recovered (): Promise<void> {
      await agent.settled()
      await relays()
    }

    test('200 relay requests of 4 KiB random bytes are all closed', async () => {
      const r = await flood(agent.ports.dataPath, { connections: 200, send: () => Buffer.concat([Buffer.from([RELAY_MAGIC]), randomBytes(4095)]), end: true, holdMs: HANDSHAKE_MS + MARGIN_MS })
      assertClosed(r, 200, { maxMs: HANDSHAKE_MS + MARGIN_MS })
      await recovered()
    })

    test('`R` alone, then EOF: closed at once', async () => {
      const r = await flood(agent.ports.dataPath, { connections: 200, send: () => Buffer.from([RELAY_MAGIC]), end: true, holdMs: HANDSHAKE_MS })
      assertClosed(r, 200, { maxMs: 1000 })
      await recovered()
    })

    test('50 relay requests dripping a byte every 500 ms are cut at the 5 s deadline', async () => {
      const r = await flood(agent.ports.dataPath, { connections: 50, send: () => Buffer.from([RELAY_MAGIC]), drip: 0x61, holdMs: HANDSHAKE_MS + MARGIN_MS })
      assertClosed(r, 50, { minMs: HANDSHAKE_MS - 1000, maxMs: HANDSHAKE_MS + MARGIN_MS })
      await recovered()
    })

    test('a relay request line of 1 MiB: closed at once', async () => {
      const line = Buffer.concat([Buffer.from([RELAY_MAGIC]), Buffer.alloc(1024 * 1024, 0x61)])
      const r = await flood(agent.ports.dataPath, { connections: 20, send: () => line, holdMs: HANDSHAKE_MS })
      assertClosed(r, 20, { maxMs: 1000 })
      await recovered()
    })
  })
})
