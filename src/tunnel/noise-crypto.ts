/**
 * Noise's ChaCha20-Poly1305 on libsodium. `@chainsafe/libp2p-noise` seals
 * each message of up to 64 KiB with a new `crypto.createCipheriv`, whose set-up
 * (a KeyObject from the raw key, the cipher context) cost about as much CPU as
 * the cipher itself in bench/tunnel. libsodium seals a message in one call,
 * and opens it in place. Everything else (hash, HKDF, X25519) stays the
 * package's default.
 */
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import type { Sodium } from './sodium.ts'

type Sealable = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0]

const flat = (data: Sealable): Uint8Array => data instanceof Uint8Array ? data : data.subarray()

export function sodiumNoiseCrypto (sodium: Sodium, base: ICryptoInterface): ICryptoInterface {
  const tag = sodium.crypto_aead_chacha20poly1305_ietf_ABYTES
  return {
    ...base,
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
