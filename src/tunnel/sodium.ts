/**
 * libsodium through `sodium-native`'s prebuilt addon: the ciphers the tunnel
 * runs per byte (pnet's XSalsa20, Noise's ChaCha20-Poly1305). Loaded once;
 * undefined where the addon does not load, and callers fall back.
 */

/** What the tunnel uses of the module (for XSalsa20 the stateful `crypto_stream_xor_*`, not the `*_wrap_*` wrappers: see pnet.ts). */
export interface Sodium {
  crypto_stream_xor_init: (state: Buffer, nonce: Uint8Array, key: Uint8Array) => void
  crypto_stream_xor_update: (state: Buffer, out: Uint8Array, data: Uint8Array) => void
  crypto_stream_xor_STATEBYTES: number
  crypto_aead_chacha20poly1305_ietf_encrypt: (c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array) => number
  crypto_aead_chacha20poly1305_ietf_decrypt: (m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array) => number
  crypto_aead_chacha20poly1305_ietf_ABYTES: number
}

let loading: Promise<Sodium | undefined> | undefined

export async function loadSodium (): Promise<Sodium | undefined> {
  loading ??= (async () => {
    try {
      // A computed name keeps bundlers from inlining the addon: it loads its prebuilt binary from its own package folder.
      const name = ['sodium', 'native'].join('-')
      const mod = await import(name) as { default?: Sodium } & Sodium
      const sodium = mod.default ?? mod
      return typeof sodium.crypto_stream_xor_update === 'function' ? sodium : undefined
    } catch {
      return undefined
    }
  })()
  return await loading
}
