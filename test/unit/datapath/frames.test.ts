// Frames of reusable data path connections (src/datapath/frames.ts): the reader
// cuts payloads out however the bytes arrive and stops at END.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { encodeFrames, FrameReader, FRAME_DATA, FRAME_RAW, dataHeader } from '../../../src/datapath/frames.ts'

/** Feeds `bytes` in chunks of the given sizes (cycled); what came out, and what followed END. */
function read (bytes: Buffer, sizes: number[]): { payload: Buffer, rest: Buffer | undefined } {
  const reader = new FrameReader()
  const out: Buffer[] = []
  let rest: Buffer | undefined
  let at = 0
  for (let i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length] as number
    const got = reader.feed(bytes.subarray(at, at + n), p => out.push(Buffer.from(p)))
    at += n
    if (got !== undefined) { rest = Buffer.concat([got, bytes.subarray(at)]); break }
  }
  return { payload: Buffer.concat(out), rest }
}

test('payload and END come out whole whatever the chunking, header bytes split included', () => {
  const payload = randomBytes(70_000)
  const next = Buffer.from('{"ip":"10.0.0.1","port":80}\n')
  const wire = Buffer.concat([encodeFrames(payload.subarray(0, 5), false), encodeFrames(payload.subarray(5), true), next])
  for (const sizes of [[1], [2], [3], [5], [4096], [wire.length], [1, 7, 3, 65536]]) {
    const { payload: got, rest } = read(wire, sizes)
    assert.ok(got.equals(payload), `chunks of ${sizes.join(',')}`)
    assert.ok(rest?.equals(next), `rest after END, chunks of ${sizes.join(',')}`)
  }
})

test('no END yet: nothing is returned, and an empty DATA frame is allowed', () => {
  const reader = new FrameReader()
  const out: Buffer[] = []
  assert.equal(reader.feed(Buffer.concat([dataHeader(0), dataHeader(3), Buffer.from('abc')]), p => out.push(p)), undefined)
  assert.equal(Buffer.concat(out).toString(), 'abc')
  assert.equal(reader.ended, false)
  assert.equal(reader.feed(Buffer.from([1, 0, 0, 0]), () => {})?.length, 0)
  assert.equal(reader.ended, true)
})

test('a frame that is neither DATA nor END, or an END with a payload, is refused', () => {
  assert.throws(() => new FrameReader().feed(Buffer.from([7, 0, 0, 1, 0]), () => {}), /bad frame \(type 7/)
  assert.throws(() => new FrameReader().feed(Buffer.from([1, 0, 0, 1, 0]), () => {}), /bad frame \(type 1, length 1\)/)
  // Bytes of a TLS record or a request line where a frame was due.
  assert.throws(() => new FrameReader().feed(Buffer.from('{"ip":"10.0.0.1"}'), () => {}), /bad frame/)
})

test('a payload over 16 MiB is cut into frames the reader joins again', () => {
  const big = Buffer.alloc((1 << 24) + 10, 7)
  const wire = encodeFrames(big, true)
  assert.equal(wire[0], FRAME_DATA)
  assert.equal(wire.readUIntBE(1, 3), (1 << 24) - 1)
  const { payload, rest } = read(wire, [1 << 20])
  assert.equal(payload.length, big.length)
  assert.equal(rest?.length, 0)
})

test('after RAW, every byte is payload, however it looks, and the direction has no END', () => {
  const looksLikeFrames = encodeFrames(Buffer.from('abc'), true)
  const wire = Buffer.concat([encodeFrames(Buffer.from('framed '), false), Buffer.from([FRAME_RAW, 0, 0, 0]), Buffer.from('raw '), looksLikeFrames])
  for (const sizes of [[1], [3], [wire.length]]) {
    const { payload, rest } = read(wire, sizes)
    assert.ok(payload.equals(Buffer.concat([Buffer.from('framed raw '), looksLikeFrames])), `chunks of ${sizes.join(',')}`)
    assert.equal(rest, undefined)
  }
  const reader = new FrameReader()
  reader.feed(Buffer.from([FRAME_RAW, 0, 0, 0]), () => {})
  assert.equal(reader.raw, true)
  assert.equal(reader.ended, false)
  assert.throws(() => new FrameReader().feed(Buffer.from([FRAME_RAW, 0, 0, 1, 0]), () => {}), /bad frame \(type 2, length 1\)/)
})
