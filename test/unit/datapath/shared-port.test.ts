import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { classifyFirstBytes } from '../../../src/datapath/shared-port.ts'
import { RELAY_HELLO } from '../../../src/datapath/wire.ts'

// The first 11 bytes of a ClientHello from Node's TLS 1.3 client with a PSK (record length 0x05d4).
const CLIENT_HELLO = Buffer.from('16030105d4010005d00303', 'hex')

test('a ClientHello and the relay hello are the data path, decided as soon as the bytes allow', () => {
  assert.equal(classifyFirstBytes(CLIENT_HELLO), 'datapath')
  assert.equal(classifyFirstBytes(Buffer.concat([CLIENT_HELLO, randomBytes(100)])), 'datapath')
  for (let n = 0; n < CLIENT_HELLO.length; n++) assert.equal(classifyFirstBytes(CLIENT_HELLO.subarray(0, n)), 'undecided', `${n} bytes`)
  assert.equal(classifyFirstBytes(RELAY_HELLO), 'datapath')
  assert.equal(classifyFirstBytes(Buffer.concat([RELAY_HELLO, Buffer.from('{"op":"park"}\n')])), 'datapath')
  assert.equal(classifyFirstBytes(RELAY_HELLO.subarray(0, 7)), 'undecided')
})

test('libp2p openings go to libp2p: multistream at once, pnet nonces by the first differing byte', () => {
  assert.equal(classifyFirstBytes(Buffer.from('\x13/multistream/1.0.0\n')), 'other')
  assert.equal(classifyFirstBytes(Buffer.from([0x13])), 'other', 'decided on one byte')
  assert.equal(classifyFirstBytes(Buffer.from('R')), 'undecided', 'a one-byte R could still be the relay hello')
  assert.equal(classifyFirstBytes(Buffer.from('RX')), 'other')
  // 10^5 random nonces: none is taken for the data path (the odds are 2^-56 each).
  for (let i = 0; i < 100_000; i++) assert.notEqual(classifyFirstBytes(randomBytes(24)), 'datapath')
  // A nonce that starts like a ClientHello is told apart by a later fixed byte.
  assert.equal(classifyFirstBytes(Buffer.from('16030105d4010105d00303', 'hex')), 'other')
})
