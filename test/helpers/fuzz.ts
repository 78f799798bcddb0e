// Shared by the fuzz targets (test/unit/*/*fuzz*.test.ts): the run's size and
// seed, a seeded generator and byte mutations. FUZZ_INPUTS (default 10,000, the
// default suite) and FUZZ_SEED pick the run; `npm run fuzz` runs 10^6 each.
export const FUZZ_INPUTS = Number(process.env.FUZZ_INPUTS ?? 10_000)
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20261123)

/** xorshift32: fast, deterministic, good enough to spread bytes. */
export class Random {
  #x: number

  constructor (seed: number) {
    this.#x = seed >>> 0 || 1
  }

  next (): number {
    this.#x ^= this.#x << 13; this.#x >>>= 0
    this.#x ^= this.#x >>> 17
    this.#x ^= this.#x << 5; this.#x >>>= 0
    return this.#x
  }

  /** 0 ≤ n < max. */
  below (max: number): number {
    return this.next() % max
  }

  pick<T> (items: readonly T[]): T {
    return items[this.below(items.length)] as T
  }

  /** Random bytes, with the boundary values parsers trip on more often than chance would give. */
  bytes (n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) out[i] = this.below(4) === 0 ? this.pick(EDGE_BYTES) : this.next() & 0xff
    return out
  }
}

const EDGE_BYTES = [0x00, 0x01, 0x05, 0x0a, 0x7f, 0x80, 0xff]

/** A copy of `buf` with one to three changes: bytes and bits flipped, cut short, bytes inserted, removed or repeated. */
export function mutate (r: Random, buf: Buffer): Buffer {
  let out = Buffer.from(buf)
  for (let round = 1 + r.below(3); round > 0; round--) {
    const at = r.below(out.length + 1)
    switch (r.below(6)) {
      case 0: if (at < out.length) out[at] = r.bytes(1)[0] as number; break
      case 1: if (at < out.length) out[at] = (out[at] as number) ^ (1 << r.below(8)); break
      case 2: out = out.subarray(0, at); break
      case 3: out = Buffer.concat([out.subarray(0, at), r.bytes(1 + r.below(8)), out.subarray(at)]); break
      case 4: out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + r.below(8))]); break
      default: out = Buffer.concat([out.subarray(0, at), out.subarray(at, at + 1 + r.below(16)), out.subarray(at)])
    }
  }
  return out
}
