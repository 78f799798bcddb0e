import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse, MIN_REQUEST_BYTES } from '../../../src/nat/index.ts'

test('a binding request is padded to the answer\'s size, and round-trips with and without change-port', () => {
  for (const changePort of [false, true]) {
    const { bytes, transactionId } = encodeRequest(changePort)
    assert.ok(bytes.length >= MIN_REQUEST_BYTES, `${bytes.length} bytes`)
    assert.equal(bytes.length % 4, 0)
    assert.deepEqual(decodeRequest(bytes), { transactionId, changePort })
  }
  assert.equal(encodeResponse(randomBytes(12), { address: '203.0.113.7', port: 40000 }).length, MIN_REQUEST_BYTES, 'no amplification: the answer is as long as the shortest request answered')
})

test('XOR-MAPPED-ADDRESS: the RFC 5769 §2.2 sample response decodes to 192.0.2.1:32853', () => {
  // RFC 5769 test vector (IPv4 response), its XOR-MAPPED-ADDRESS attribute only.
  const tid = Buffer.from('b7e7a701bc34d686fa87dfae', 'hex')
  const attr = Buffer.from('002000080001a147e112a643', 'hex')
  const msg = Buffer.concat([Buffer.from('01010000', 'hex'), Buffer.from('2112a442', 'hex'), tid, attr])
  msg.writeUInt16BE(attr.length, 2)
  assert.deepEqual(decodeResponse(msg), { transactionId: tid, mapped: { address: '192.0.2.1', port: 32853 } })
  const ours = encodeResponse(tid, { address: '192.0.2.1', port: 32853 })
  assert.deepEqual(ours.subarray(20), attr, 'we encode the same bytes')
})

test('anything else is undefined, never a throw: wrong type, cookie, lengths, truncated attributes, random bytes', () => {
  const { bytes } = encodeRequest()
  const broken = (f: (b: Buffer) => void): Buffer => { const b = Buffer.from(bytes); f(b); return b }
  assert.equal(decodeRequest(broken(b => b.writeUInt16BE(0x0101, 0))), undefined)
  assert.equal(decodeRequest(broken(b => b.writeUInt32BE(0xdeadbeef, 4))), undefined)
  assert.equal(decodeRequest(broken(b => b.writeUInt16BE(b.readUInt16BE(2) + 4, 2))), undefined)
  assert.equal(decodeRequest(broken(b => b.writeUInt16BE(0xfff0, 22))), undefined, 'an attribute longer than the message')
  assert.equal(decodeRequest(bytes.subarray(0, 19)), undefined)
  assert.equal(decodeResponse(bytes), undefined, 'a request is not a response')
  for (let i = 0; i < 2000; i++) {
    const b = randomBytes(1 + (i % 80))
    if (i % 2 === 0 && b.length >= 8) { b.writeUInt16BE(i % 4 === 0 ? 0x0001 : 0x0101, 0); b.writeUInt32BE(0x2112a442, 4) }
    decodeRequest(b)
    decodeResponse(b)
  }
})
