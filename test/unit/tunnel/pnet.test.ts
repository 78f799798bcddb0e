// The native XSalsa20 must produce the same keystream as the one the pnet
// wire is defined by (@libp2p/pnet's `xsalsa20`, go-libp2p's
// golang.org/x/crypto/salsa20), whatever sizes the data arrives in.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { loadSodiumCipher } from '../../../src/tunnel/pnet.ts'

const require = createRequire(import.meta.url)
const xsalsa20 = require('xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => { update: (input: Uint8Array, output?: Uint8Array) => Uint8Array }

test('native XSalsa20 matches the reference keystream across odd chunk boundaries', async () => {
  const native = await loadSodiumCipher()
  assert.ok(native !== undefined, 'sodium-native loads on this machine (linux-x64 prebuild)')
  const key = randomBytes(32)
  const nonce = randomBytes(24)
  const data = randomBytes(300_000)
  const ours = native(nonce, key)
  const ref = xsalsa20(nonce, key)
  // Sizes that straddle the 64-byte block in every way, then big ones.
  const sizes = [1, 63, 64, 65, 7, 128, 1000, 4095, 70_000, 1, 3]
  let at = 0
  for (let i = 0; at < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length] as number, data.length - at)
    const chunk = data.subarray(at, at + n)
    assert.deepEqual(Buffer.from(ours.update(chunk)), Buffer.from(ref.update(chunk)), `chunk ${i} at byte ${at}`)
    at += n
  }
})

test('native XSalsa20 in place and into a given buffer gives the same keystream as into new buffers', async () => {
  const native = await loadSodiumCipher()
  assert.ok(native !== undefined)
  const key = randomBytes(32)
  const nonce = randomBytes(24)
  const data = randomBytes(10_000)
  const expected = Buffer.from(native(nonce, key).update(data))
  const inPlace = Buffer.from(data)
  const c = native(nonce, key)
  // Two pieces in place, then one into a slice of a bigger buffer (how a batched write is enciphered).
  c.update(inPlace.subarray(0, 333), inPlace.subarray(0, 333))
  c.update(inPlace.subarray(333, 5000), inPlace.subarray(333, 5000))
  const batch = Buffer.alloc(6000)
  c.update(data.subarray(5000), batch.subarray(1000))
  assert.deepEqual(inPlace.subarray(0, 5000), expected.subarray(0, 5000))
  assert.deepEqual(batch.subarray(1000), expected.subarray(5000))
})
