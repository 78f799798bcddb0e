import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { decodeOpen, decodeResume, decodeResumed, encodeOpen, encodeResume, encodeResumed } from '../../../src/datapath/resume-wire.ts'

const key = randomBytes(32)
const id = randomBytes(16)

test('open, resume and resumed decode to what was encoded', () => {
  assert.deepEqual(decodeOpen(encodeOpen(id)), id)
  assert.deepEqual(decodeResume(key, encodeResume(key, id, 2 ** 40 + 3)), { id, received: 2 ** 40 + 3 })
  assert.equal(decodeResumed(key, id, encodeResumed(key, id, 12345)), 12345)
})

test('another key, another session, a flipped bit or a cut: refused', () => {
  const request = encodeResume(key, id, 7)
  assert.equal(decodeResume(randomBytes(32), request), undefined)
  for (let i = 0; i < request.length; i++) {
    const bad = Buffer.from(request)
    bad[i] = (bad[i] as number) ^ 1
    assert.equal(decodeResume(key, bad), undefined, `byte ${i}`)
  }
  assert.equal(decodeResume(key, request.subarray(0, request.length - 1)), undefined)
  // An answer for one session does not pass for another.
  assert.equal(decodeResumed(key, randomBytes(16), encodeResumed(key, id, 7)), undefined)
  assert.equal(decodeOpen(encodeResume(key, id, 7).subarray(0, 21)), undefined)
  for (let i = 0; i < 1000; i++) {
    const junk = randomBytes(i % 60)
    assert.equal(decodeResume(key, junk), undefined)
    assert.equal(decodeResumed(key, id, junk), undefined)
  }
})
