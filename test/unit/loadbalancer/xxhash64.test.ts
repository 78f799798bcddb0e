import { test } from 'node:test'
import assert from 'node:assert/strict'
import { xxh64, xxh64Uint64LE } from '../../../src/loadbalancer/xxhash64.ts'

test('xxh64 matches the reference vectors (seed 0)', () => {
  const cases: Array<[string, bigint]> = [
    ['', 0xef46db3751d8e999n],
    ['a', 0xd24ec4f1a98c6e5bn],
    ['abc', 0x44bc2cf5ad770999n],
    ['The quick brown fox jumps over the lazy dog', 0x0b242d361fda71bcn],
    // 100 bytes: the 32-byte stripe loop, 8-byte and 4-byte tails (value from cespare/xxhash v2.1.2)
    ['x'.repeat(100), 0x92f0de5a88a3c094n]
  ]
  for (const [input, want] of cases) assert.equal(xxh64(input), want, JSON.stringify(input))
})

test('xxh64 hashes strings as UTF-8 and bytes as given', () => {
  assert.equal(xxh64('é'), xxh64(new Uint8Array([0xc3, 0xa9])))
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, 42n, true)
  assert.equal(xxh64Uint64LE(42), xxh64(bytes))
  // a subarray with a non-zero byte offset
  const buf = new TextEncoder().encode('--abc--')
  assert.equal(xxh64(buf.subarray(2, 5)), 0x44bc2cf5ad770999n)
})
