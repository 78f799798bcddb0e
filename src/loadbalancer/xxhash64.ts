/**
 * XXH64 (xxHash, 64-bit) over BigInt, as `github.com/cespare/xxhash/v2`
 * `Sum64` computes it (seed 0). Upstream's consistent-hash ring hashes with
 * it, so identical picks across Go and TypeScript nodes depend on it.
 * Inputs here are short (endpoint names, header values), so BigInt is fast
 * enough: a few microseconds per key.
 */

const MASK = 0xffffffffffffffffn
const P1 = 0x9e3779b185ebca87n
const P2 = 0xc2b2ae3d27d4eb4fn
const P3 = 0x165667b19e3779f9n
const P4 = 0x85ebca77c2b2ae63n
const P5 = 0x27d4eb2f165667c5n

const encoder = new TextEncoder()

function rotl (x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & MASK
}

function round (acc: bigint, input: bigint): bigint {
  acc = (acc + input * P2) & MASK
  return (rotl(acc, 31n) * P1) & MASK
}

function mergeRound (acc: bigint, val: bigint): bigint {
  acc ^= round(0n, val)
  return (acc * P1 + P4) & MASK
}

/** XXH64 of `data` (a string is hashed as its UTF-8 bytes); an unsigned 64-bit value. */
export function xxh64 (data: Uint8Array | string, seed = 0n): bigint {
  const b = typeof data === 'string' ? encoder.encode(data) : data
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const len = b.byteLength
  let p = 0
  let h: bigint
  if (len >= 32) {
    let v1 = (seed + P1 + P2) & MASK
    let v2 = (seed + P2) & MASK
    let v3 = seed & MASK
    let v4 = (seed - P1) & MASK
    for (; p + 32 <= len; p += 32) {
      v1 = round(v1, view.getBigUint64(p, true))
      v2 = round(v2, view.getBigUint64(p + 8, true))
      v3 = round(v3, view.getBigUint64(p + 16, true))
      v4 = round(v4, view.getBigUint64(p + 24, true))
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK
    h = mergeRound(h, v1)
    h = mergeRound(h, v2)
    h = mergeRound(h, v3)
    h = mergeRound(h, v4)
  } else {
    h = (seed + P5) & MASK
  }
  h = (h + BigInt(len)) & MASK
  for (; p + 8 <= len; p += 8) {
    h ^= round(0n, view.getBigUint64(p, true))
    h = (rotl(h, 27n) * P1 + P4) & MASK
  }
  if (p + 4 <= len) {
    h ^= (BigInt(view.getUint32(p, true)) * P1) & MASK
    h = (rotl(h, 23n) * P2 + P3) & MASK
    p += 4
  }
  for (; p < len; p++) {
    h ^= (BigInt(b[p] as number) * P5) & MASK
    h = (rotl(h, 11n) * P1) & MASK
  }
  h ^= h >> 33n
  h = (h * P2) & MASK
  h ^= h >> 29n
  h = (h * P3) & MASK
  h ^= h >> 32n
  return h
}

/** XXH64 of the 8 little-endian bytes of `n` (how the ring hashes a partition id). */
export function xxh64Uint64LE (n: number): bigint {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true)
  return xxh64(bytes)
}
