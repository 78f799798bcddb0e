import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { compatRawKey, compatSeed } from '../../../src/tunnel/identity.ts'
import { compatPeerId } from '../../../src/tunnel/peer-directory.ts'
import { decodeProxyBody, encodeDiscovery, encodeProxy, takeFrame, MessageType } from '../../../src/tunnel/messages.ts'

// Upstream pkg/tunnel/util_test.go, plus names computed with the same derivation.
const VECTORS: Array<[string, string]> = [
  ['k8s-master', '12D3KooWB5qVCMrMNLpBDfMu6o4dy6ci2UqDVsFVomcd2PfYVzfW'],
  ['k8s-node1', '12D3KooWErZ4m27CEinjcnXNvem2KFUJUFRBcd9NdcWnYRqyr1Sn'],
  ['ke-edge1', '12D3KooWF3RB8SoMRZht7MDqF6GoipSPdFxVb9ESRLU7NuPX6ifH'],
  ['ke-edge2', '12D3KooWSD4f5fZb5c9PQ6FPVd8Em4eKX3mRezcyqXSHUyomoy8S'],
  ['k8s-Master', '12D3KooWA9AvBpYt17yctznPFxDvR6NFXfyu8kY72jnVLC9SKUG4'],
  ['mａsteｒ', '12D3KooWAZ7jrUXyHuTZ7rT1uUnqXZPY88HjdhvDaQjivD5M35nw'],
  ['ke-node1\n', '12D3KooWFP7gZfX1n1HLQAZt7rCZpffRvqXf7QYASxbz9mrEkAVi'],
  ['MyNode', '12D3KooWQ4LGgA3djuvPt4Ao9YH2U39Yge5uzn3HwHXkDK23YDVg'],
  ['k8s-master-gateway', '12D3KooWK7jA1pdgBVvNicvVEE1Dp24YNcFTyUzwCBLyH7fVgKZ8'],
  ['edge-node', '12D3KooWShWPN2xpmkQANTTbdfjGFcUKn92EtvemDPgr6xFDD7gz'],
  ['test-control-plane', '12D3KooWGWVMQU7X8nezHvjviroH4FzNQv7DLSY4VTsCeDk5qDrb']
]

test('PeerIDs derived from node names match upstream EdgeMesh', async () => {
  assert.equal(Buffer.from(compatSeed('k8s-master')).toString('hex'), 'a58a62add392dcc52ed5fb5d2a0a9f13249500dfb994ee1b31499254d5204176')
  for (const [name, peerId] of VECTORS) {
    assert.equal((await compatPeerId(name)).toString(), peerId, JSON.stringify(name))
    // The public key OpenSSL gives equals the one @libp2p/crypto computes from the seed.
    const key = await generateKeyPairFromSeed('Ed25519', compatSeed(name))
    assert.deepEqual(Buffer.from(compatRawKey(name)), Buffer.from(key.raw), JSON.stringify(name))
  }
})

test('proxy handshake bytes match upstream (proto2, uvarint-framed)', () => {
  const connect = encodeProxy({ type: MessageType.CONNECT, protocol: 'tcp', nodeName: 'ke-edge1', ip: '10.244.1.5', port: 9376 })
  assert.equal(connect.toString('hex'), '20' + '0800' + '120374' + '6370' + '1a086b652d6564676531' + '220a31302e3234342e312e35' + '28a049')
  assert.equal(encodeProxy({ type: MessageType.FAILED }).toString('hex'), '020802')
  const frame = takeFrame(Buffer.concat([connect, Buffer.from('payload')]))
  assert.ok(frame !== undefined)
  assert.deepEqual(decodeProxyBody(frame.body), { type: 0, protocol: 'tcp', nodeName: 'ke-edge1', ip: '10.244.1.5', port: 9376 })
  assert.equal(frame.rest.toString(), 'payload', 'bytes after the handshake are kept')
  assert.equal(takeFrame(connect.subarray(0, 10)), undefined, 'a partial frame waits for more')
  assert.throws(() => takeFrame(Buffer.from([0x81, 0x40])), /exceeds 4096/)
})

test('discovery handshake bytes match upstream', () => {
  assert.equal(encodeDiscovery({ type: MessageType.CONNECT, protocol: 'MDNS', nodeName: 'ke-edge2' }).toString('hex'), '12' + '0800' + '12044d444e53' + '1a086b652d6564676532')
  assert.equal(encodeDiscovery({ type: MessageType.SUCCESS, protocol: 'MDNS', nodeName: 'ke-edge1' }).toString('hex'), '12' + '0801' + '12044d444e53' + '1a086b652d6564676531')
  const frame = takeFrame(Buffer.from('120800' + '12044d444e53' + '1a086b652d6564676532', 'hex'))
  assert.deepEqual(decodeProxyBody(frame?.body ?? Buffer.alloc(0)), { type: 0, protocol: 'MDNS', nodeName: 'ke-edge2' })
})
