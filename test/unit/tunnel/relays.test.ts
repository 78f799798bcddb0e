import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import { circuitsTo, classifyDialFailure, dialTargets, diffRelays } from '../../../src/tunnel/relays.ts'
import type { RelayEntry } from '../../../src/tunnel/relays.ts'
import { slowStreamAction, STALE_CONNECTION_MS } from '../../../src/tunnel/tunnel.ts'
import { compatPeerId } from '../../../src/tunnel/peer-directory.ts'

async function relays (): Promise<RelayEntry[]> {
  return [
    { nodeName: 'relay-1', peerId: await compatPeerId('relay-1'), addrs: [multiaddr('/ip4/203.0.113.1/tcp/20006')] },
    { nodeName: 'relay-2', peerId: await compatPeerId('relay-2'), addrs: [multiaddr('/ip4/203.0.113.2/tcp/20006'), multiaddr('/dns4/relay-2.example/tcp/20006')] }
  ]
}

test('a relay is dialed at its configured addresses only', async () => {
  const r = await relays()
  const id = r[1]?.peerId.toString() as string
  assert.deepEqual(dialTargets(r, 'relay-2', id, []), [`/ip4/203.0.113.2/tcp/20006/p2p/${id}`, `/dns4/relay-2.example/tcp/20006/p2p/${id}`])
})

test('any other peer: LAN addresses mDNS found first, then a circuit through every relay, never what identify learned', async () => {
  const r = await relays()
  const peer = (await compatPeerId('edge-b')).toString()
  const lan = [multiaddr(`/ip4/192.168.1.7/tcp/20006/p2p/${peer}`)]
  const targets = dialTargets(r, 'edge-b', peer, lan)
  assert.equal(targets[0], lan[0]?.toString())
  assert.deepEqual(targets.slice(1), circuitsTo(r, peer))
  assert.equal(targets.length, 1 + 3, 'one circuit per relay address')
  assert.ok(targets.slice(1).every(t => t.endsWith(`/p2p-circuit/p2p/${peer}`)))
})

test('a relay is not a circuit to itself', async () => {
  const r = await relays()
  const id = r[0]?.peerId.toString() as string
  assert.ok(circuitsTo(r, id).every(c => !c.startsWith('/ip4/203.0.113.1/')))
})

test('a slow new stream: wait when the peer sent data just now, else the connection is dead and is redialed', () => {
  assert.equal(slowStreamAction(0), 'wait')
  assert.equal(slowStreamAction(STALE_CONNECTION_MS - 1), 'wait')
  assert.equal(slowStreamAction(STALE_CONNECTION_MS), 'redial')
  assert.equal(slowStreamAction(Infinity), 'redial', 'never heard from')
})

test('relayNodes edits are reported as added and removed names', () => {
  assert.deepEqual(diffRelays(['relay-1', 'relay-2'], ['relay-2', 'relay-3']), { added: ['relay-3'], removed: ['relay-1'] })
  assert.deepEqual(diffRelays(['relay-1'], ['relay-1']), { added: [], removed: [] })
})

test('a failed relay dial is blamed on the PSK by error name or by an open port, never by message text', async () => {
  const server = createServer(s => s.destroy())
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const open = { host: '127.0.0.1', port: (server.address() as { port: number }).port }
  try {
    // A message that reads like a handshake failure does not make a closed port a PSK problem.
    assert.equal(await classifyDialFailure(new Error('invalid handshake: decrypt failed'), [{ host: '127.0.0.1', port: 1 }]), 'unreachable')
    assert.equal(await classifyDialFailure(Object.assign(new Error('x'), { name: 'EncryptionFailedError' }), [{ host: '127.0.0.1', port: 1 }]), 'psk')
    assert.equal(await classifyDialFailure(new Error('The operation was aborted'), [open]), 'psk', 'TCP connects, the handshake did not finish')
    assert.equal(await classifyDialFailure(new AggregateError([Object.assign(new Error('y'), { name: 'InvalidCryptoExchangeError' })], 'all dials failed'), []), 'psk')
  } finally {
    await new Promise(resolve => server.close(resolve))
  }
})
