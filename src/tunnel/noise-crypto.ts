/**
 * Noise's crypto on native code. `@chainsafe/libp2p-noise` seals each message
 * of up to 64 KiB with a new `crypto.createCipheriv`, whose set-up (a
 * KeyObject from the raw key, the cipher context) cost about as much CPU as
 * the cipher itself in bench/tunnel: libsodium seals a message in one call,
 * and opens it in place. Its HKDF runs SHA-256 in JavaScript (@noble/hashes):
 * the six HKDFs of each handshake made V8 optimise the hash with TurboFan at
 * start, whose compiler pages then stayed resident (about 4 MB of an idle
 * agent's RSS, docs/benchmarks.md); OpenSSL's HKDF gives the same bytes.
 * X25519 and the hash stay the package's defaults (already OpenSSL).
 */
import { hkdfSync } from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import type { Sodium } from './sodium.ts'

type Sealable = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0]

const flat = (data: Sealable): Uint8Array => data instanceof Uint8Array ? data : data.subarray()
const NO_INFO = new Uint8Array(0)

/** `base` with Noise's HKDF (salt = chaining key, no info, three 32-byte keys) from OpenSSL, and the cipher from libsodium where it loaded. */
export function nativeNoiseCrypto (base: ICryptoInterface, sodium?: Sodium): ICryptoInterface {
  const crypto: ICryptoInterface = {
    ...base,
    getHKDF (ck, ikm) {
      const okm = new Uint8Array(hkdfSync('sha256', ikm, ck, NO_INFO, 96))
      return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)]
    }
  }
  return sodium === undefined ? crypto : { ...crypto, ...sodiumCipher(sodium) }
}

function sodiumCipher (sodium: Sodium): Pick<ICryptoInterface, 'chaCha20Poly1305Encrypt' | 'chaCha20Poly1305Decrypt'> {
  const tag = sodium.crypto_aead_chacha20poly1305_ietf_ABYTES
  return {
    chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
      const m = flat(plaintext)
      const c = Buffer.allocUnsafe(m.byteLength + tag)
      sodium.crypto_aead_chacha20poly1305_ietf_encrypt(c, m, ad, null, nonce, k)
      return c
    },
    chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
      const c = flat(ciphertext)
      // In place when the caller offers the ciphertext's own bytes (libsodium allows it); a throw means a forged or corrupt message.
      const m = dst !== undefined && dst.byteLength === c.byteLength - tag ? dst : Buffer.allocUnsafe(c.byteLength - tag)
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(m, null, c, ad, nonce, k)
      return m
    }
  }
}
