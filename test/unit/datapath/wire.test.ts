// The data path's key derivation: the keys a node derives once and keeps must
// be the ones both ends compute, and must differ per identity and per PSK.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DataPathKeys, relayControlKey, relayMac, tlsKey } from '../../../src/datapath/wire.ts'

const PNET = new Uint8Array(32).fill(7)
const OTHER = new Uint8Array(32).fill(8)

test('DataPathKeys: TLS keys are the HKDF of the pnet key per identity, the same on every call', () => {
  const keys = new DataPathKeys(PNET)
  const ab = keys.tls('a>b')
  assert.deepEqual(ab, tlsKey(PNET, 'a>b'))
  assert.deepEqual(keys.tls('a>b'), ab)
  assert.notDeepEqual(keys.tls('b>a'), ab)
  assert.notDeepEqual(new DataPathKeys(OTHER).tls('a>b'), ab)
  // Past the bound of kept identities the keys are still right.
  for (let i = 0; i < 5000; i++) keys.tls(`n${i}>b`)
  assert.deepEqual(keys.tls('a>b'), tlsKey(PNET, 'a>b'))
  assert.deepEqual(keys.tls('n4999>b'), tlsKey(PNET, 'n4999>b'))
})

test('DataPathKeys: a relay request MAC checks out with the same PSK only, and binds the nonce and request', () => {
  const nonce = new Uint8Array(16).fill(1)
  const request = { op: 'join', node: 'a', target: 'b' }
  const mac = new DataPathKeys(PNET).relayMac(nonce, request)
  assert.equal(mac, relayMac(relayControlKey(PNET), nonce, request))
  assert.equal(new DataPathKeys(PNET).relayMac(nonce, request), mac)
  assert.notEqual(new DataPathKeys(OTHER).relayMac(nonce, request), mac)
  assert.notEqual(new DataPathKeys(PNET).relayMac(new Uint8Array(16).fill(2), request), mac)
  assert.notEqual(new DataPathKeys(PNET).relayMac(nonce, { ...request, target: 'c' }), mac)
})
