// The libp2p tunnel listener (20006: pnet, Noise, Yamux) under garbage,
// truncated, silent, dripping and oversized clients.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createHost } from '../../src/tunnel/host.ts'
import { readPnetKey } from '../../src/mesh/psk.ts'
import { assertClosed, flood, httpGet, startAgent } from './agent.ts'
import type { Agent } from './agent.ts'

// libp2p's inboundUpgradeTimeout (the agent keeps the default): pnet, Noise and multistream must be done within it.
const UPGRADE_MS = 10_000
const MARGIN_MS = 2000
// libp2p admits 5 connections a second per address: each flood comes from an address of its own, neither the
// checking peer's (127.0.0.1) nor an earlier flood's, so no case starts rate-limited.
let floods = 0
function attacker (): () => string {
  const address = `127.0.0.${2 + floods++}`
  return () => address
}

describe('tunnel port', () => {
  let agent: Agent
  let peerId: string

  /** A libp2p peer with the PSK connects and finds the agent's PeerID. */
  async function peerConnects (): Promise<void> {
    const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: [], announce: [], pnetKey: await readPnetKey(agent.pskFile), maxStreamWindowBytes: 0, dht: false }, undefined)
    await host.node.start()
    try {
      const conn = await host.node.dial(host.multiaddr(`/ip4/127.0.0.1/tcp/${agent.ports.tunnel}`), { signal: AbortSignal.timeout(5000) })
      assert.equal(conn.remotePeer.toString(), peerId)
    } finally {
      await host.node.stop()
    }
  }

  async function recovered (): Promise<void> {
    await agent.settled()
    await peerConnects()
  }

  before(async () => {
    agent = await startAgent()
    peerId = (JSON.parse((await httpGet(agent.ports.status, '/status')).body) as { tunnel: { peerId: string } }).tunnel.peerId
    await peerConnects()
    agent.markBaseline()
  })
  after(async () => { await agent?.stop() })

  test('200 connections of 4 KiB random bytes are all closed', async () => {
    const r = await flood(agent.ports.tunnel, { connections: 200, send: () => randomBytes(4096), end: true, from: attacker(), holdMs: UPGRADE_MS + MARGIN_MS })
    assertClosed(r, 200, { maxMs: UPGRADE_MS + MARGIN_MS })
    await recovered()
  })

  test('a multistream header cut short, then EOF: closed at once', async () => {
    const r = await flood(agent.ports.tunnel, { connections: 200, send: () => Buffer.from('\x13/multistream/1.'), end: true, from: attacker(), holdMs: UPGRADE_MS })
    assertClosed(r, 200, { maxMs: 1000 })
    await recovered()
  })

  test('300 silent connections are closed within the 10 s upgrade deadline', async () => {
    const r = await flood(agent.ports.tunnel, { connections: 300, from: attacker(), holdMs: UPGRADE_MS + MARGIN_MS })
    assertClosed(r, 300, { minMs: UPGRADE_MS - 1000, maxMs: UPGRADE_MS + MARGIN_MS })
    await recovered()
  })

  test('50 connections dripping a pnet nonce a byte every 500 ms are cut at the 10 s upgrade deadline', async () => {
    const r = await flood(agent.ports.tunnel, { connections: 50, drip: 0x00, from: attacker(), holdMs: UPGRADE_MS + MARGIN_MS })
    assertClosed(r, 50, { minMs: UPGRADE_MS - 1000, maxMs: UPGRADE_MS + MARGIN_MS })
    await recovered()
  })

  test('1 MiB of random bytes: closed, at the latest by the 10 s upgrade deadline', async () => {
    // Usually at once; but decrypted with the pnet key, random bytes can read as a length prefix that
    // asks for more, and then only the deadline ends the wait.
    const r = await flood(agent.ports.tunnel, { connections: 20, send: () => randomBytes(1024 * 1024), from: attacker(), holdMs: UPGRADE_MS + MARGIN_MS })
    assertClosed(r, 20, { maxMs: UPGRADE_MS + MARGIN_MS })
    await recovered()
  })

  test('a peer still connects while silent connections from other addresses wait for their upgrade', async () => {
    // 8 addresses at 5 a second fill libp2p's 10 pending slots.
    const silent = flood(agent.ports.tunnel, { connections: 40, from: i => `127.0.1.${1 + i % 8}`, holdMs: 3000 })
    try {
      await new Promise(resolve => setTimeout(resolve, 500))
      await peerConnects()
    } finally {
      await silent
    }
    await recovered()
  })
})
