// Random and mutated frame streams into the reader of reusable data path
// connections (src/datapath/frames.ts): a valid stream comes out whole however
// its bytes are cut, with what follows END handed back; a mutated one only ever
// throws the reader's own refusal, never hands out more bytes than it was
// given, and cuts the same way whatever the chunking. FUZZ_INPUTS and FUZZ_SEED
// pick the run (`npm run fuzz` runs 10^6).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FRAME_RAW, FrameReader, encodeFrames } from '../../../src/datapath/frames.ts'
import { FUZZ_INPUTS, FUZZ_SEED, Random, mutate } from '../../helpers/fuzz.ts'

/** Feeds `bytes` in random chunks; what came out, what followed END, and the reader's refusal if any. */
function read (r: Random, bytes: Buffer): { payload: Buffer, rest: Buffer | undefined, error: string | undefined } {
  const reader = new FrameReader()
  const out: Buffer[] = []
  let at = 0
  try {
    while (at < bytes.length) {
      const n = 1 + r.below(Math.min(64, bytes.length - at))
      const rest = reader.feed(bytes.subarray(at, at + n), p => out.push(Buffer.from(p)))
      at += n
      if (rest !== undefined) return { payload: Buffer.concat(out), rest: Buffer.concat([rest, bytes.subarray(at)]), error: undefined }
    }
  } catch (err) {
    return { payload: Buffer.concat(out), rest: undefined, error: (err as Error).message }
  }
  return { payload: Buffer.concat(out), rest: undefined, error: undefined }
}

/** A direction as a sender writes it: some DATA frames, then END and the next request's bytes, or RAW and raw bytes. */
function stream (r: Random): { wire: Buffer, payload: Buffer, rest: Buffer | undefined } {
  const parts: Buffer[] = []
  const payload: Buffer[] = []
  for (let i = r.below(5); i > 0; i--) {
    const bytes = r.bytes(r.below(200))
    parts.push(encodeFrames(bytes, false))
    payload.push(bytes)
  }
  if (r.below(4) === 0) {
    const raw = r.bytes(r.below(100))
    return { wire: Buffer.concat([...parts, Buffer.from([FRAME_RAW, 0, 0, 0]), raw]), payload: Buffer.concat([...payload, raw]), rest: undefined }
  }
  const rest = r.bytes(r.below(40))
  return { wire: Buffer.concat([...parts, encodeFrames(Buffer.alloc(0), true), rest]), payload: Buffer.concat(payload), rest }
}

test(`frame reader: ${FUZZ_INPUTS} valid streams come out whole, cut at random`, () => {
  const r = new Random(FUZZ_SEED)
  for (let i = 0; i < FUZZ_INPUTS; i++) {
    const s = stream(r)
    const got = read(r, s.wire)
    assert.equal(got.error, undefined)
    assert.ok(got.payload.equals(s.payload), `input ${i}`)
    assert.deepEqual(got.rest, s.rest, `input ${i}`)
  }
})

test(`frame reader: ${FUZZ_INPUTS} mutated streams are refused or read, never more than they hold, the same whatever the cuts`, () => {
  const r = new Random(FUZZ_SEED + 1)
  for (let i = 0; i < FUZZ_INPUTS; i++) {
    const wire = mutate(r, stream(r).wire)
    const once = read(r, wire)
    const again = read(r, wire)
    if (once.error !== undefined) assert.match(once.error, /^bad frame \(type \d+, length \d+\)$/)
    assert.ok(once.payload.length + (once.rest?.length ?? 0) <= wire.length)
    assert.deepEqual(again.error, once.error, `input ${i}`)
    assert.ok(again.payload.equals(once.payload), `input ${i}`)
    assert.deepEqual(again.rest, once.rest, `input ${i}`)
  }
})
