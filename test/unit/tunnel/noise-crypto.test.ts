// Noise on native code must seal, open and derive keys exactly as the package's own crypto
// (OpenSSL's cipher and the JavaScript HKDF of @noble/hashes): peers mix them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { defaultCrypto, pureJsCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { nativeNoiseCrypto } from '../../../src/tunnel/noise-crypto.ts'
import { loadSodium } from '../../../src/tunnel/sodium.ts'

const bytes = (d: Uint8Array | Uint8ArrayList): Buffer => Buffer.from(d.subarray())

test('sodium ChaCha20-Poly1305 seals and opens as the default Noise crypto, small and large, flat and listed', async () => {
  const sodium = await loadSodium()
  assert.ok(sodium !== undefined, 'sodium-native loads on this machine')
  const ours = nativeNoiseCrypto(defaultCrypto, sodium)
  for (const size of [0, 1, 1199, 1200, 4096, 65519]) {
    const k = randomBytes(32)
    const nonce = randomBytes(12)
    const ad = randomBytes(size % 5)
    const m = randomBytes(size)
    const listed = new Uint8ArrayList(m.subarray(0, size >> 1), m.subarray(size >> 1))
    const sealed = bytes(ours.chaCha20Poly1305Encrypt(listed, nonce, ad, k))
    assert.deepEqual(sealed, bytes(defaultCrypto.chaCha20Poly1305Encrypt(m, nonce, ad, k)), `seal ${size}`)
    assert.deepEqual(bytes(defaultCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, k)), m, `default opens ours ${size}`)
    // In place, as Noise asks: dst is the ciphertext's own bytes.
    const buf = Buffer.from(sealed)
    assert.deepEqual(bytes(ours.chaCha20Poly1305Decrypt(buf, nonce, ad, k, buf.subarray(0, size))), m, `open in place ${size}`)
  }
})

test('a forged message is refused', async () => {
  const sodium = await loadSodium()
  assert.ok(sodium !== undefined)
  const ours = nativeNoiseCrypto(defaultCrypto, sodium)
  const k = randomBytes(32)
  const nonce = randomBytes(12)
  const sealed = bytes(ours.chaCha20Poly1305Encrypt(randomBytes(100), nonce, new Uint8Array(0), k))
  sealed[5] = (sealed[5] as number) ^ 1
  assert.throws(() => ours.chaCha20Poly1305Decrypt(sealed, nonce, new Uint8Array(0), k))
})

test('HKDF from OpenSSL gives the bytes of the package\'s JavaScript HKDF, for every input length Noise uses', () => {
  const ours = nativeNoiseCrypto(defaultCrypto)
  for (const ikmLength of [0, 32, 33, 64, 200]) {
    const ck = randomBytes(32)
    const ikm = randomBytes(ikmLength)
    const got = ours.getHKDF(ck, ikm).map(k => Buffer.from(k))
    const want = pureJsCrypto.getHKDF(ck, ikm).map(k => Buffer.from(k))
    assert.deepEqual(got, want, `ikm of ${ikmLength} bytes`)
    assert.deepEqual(got.map(k => k.byteLength), [32, 32, 32])
  }
})
