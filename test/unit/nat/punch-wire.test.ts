import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { decodePunch, encodePunch, isPunchDatagram, punchKey } from '../../../src/nat/punch-wire.ts'
import type { PunchMessage } from '../../../src/nat/punch-wire.ts'
import { encodeRequest } from '../../../src/nat/stun.ts'

const key = punchKey(Buffer.alloc(32, 1))
const link = Buffer.from('0123456789abcdef', 'hex')

test('every message type decodes to what was encoded', () => {
  const messages: PunchMessage[] = [
    { type: 'probe', link, node: 'edge-a1', nonce: 0 },
    { type: 'ack', link, node: 'edge-a1', nonce: 2 ** 32 - 1 },
    { type: 'open', link, node: 'ñode-b', stream: 12345 },
    { type: 'accept', link, node: 'x'.repeat(253), stream: 1, accepted: 2 ** 31 }
  ]
  for (const m of messages) assert.deepEqual(decodePunch(key, encodePunch(key, m)), m)
})

test('another PSK, a flipped bit anywhere, a cut or an extra byte: not a message', () => {
  const bytes = encodePunch(key, { type: 'open', link, node: 'edge-a1', stream: 7 })
  assert.equal(decodePunch(punchKey(Buffer.alloc(32, 2)), bytes), undefined)
  for (let i = 0; i < bytes.length; i++) {
    const flipped = Buffer.from(bytes)
    flipped[i] = (flipped[i] as number) ^ 0x10
    assert.equal(decodePunch(key, flipped), undefined, `bit flipped in byte ${i}`)
  }
  for (let n = 0; n < bytes.length; n++) assert.equal(decodePunch(key, bytes.subarray(0, n)), undefined, `cut to ${n}`)
  assert.equal(decodePunch(key, Buffer.concat([bytes, Buffer.from([0])])), undefined)
})

test('STUN and UDX packets are never taken for ours; random input never throws', () => {
  assert.equal(isPunchDatagram(encodeRequest(false).bytes), false)
  assert.equal(isPunchDatagram(Buffer.from([0xff, 1, 0, 0, 0, 0, 0, 0])), false)
  for (let i = 0; i < 10_000; i++) {
    const junk = randomBytes(i % 80)
    if (i % 2 === 0 && junk.length >= 4) Buffer.from('EMP1').copy(junk)
    assert.equal(decodePunch(key, junk), undefined)
  }
})

test('names that do not fit are refused when encoding', () => {
  assert.throws(() => encodePunch(key, { type: 'probe', link, node: '', nonce: 1 }), RangeError)
  assert.throws(() => encodePunch(key, { type: 'probe', link, node: 'x'.repeat(254), nonce: 1 }), RangeError)
  assert.throws(() => encodePunch(key, { type: 'probe', link: Buffer.alloc(4), node: 'a', nonce: 1 }), RangeError)
})
