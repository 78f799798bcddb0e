// Pod packets framed on a channel come out whole and in order however the
// stream splits them; a frame too short for an IPv4 header is refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { FrameReader, frame, MAX_PACKET } from '../../../src/cni/frames.ts'
import { CniError } from '../../../src/cni/errors.ts'
import { Random } from '../../helpers/fuzz.ts'

test('packets of every size come out as sent, whatever the chunks', () => {
  const r = new Random(7)
  const packets = [20, 21, 1400, 1500, 9000, MAX_PACKET, 60].map(n => randomBytes(n))
  const stream = Buffer.concat(packets.map(frame))
  for (let round = 0; round < 200; round++) {
    const reader = new FrameReader()
    const got: Buffer[] = []
    for (let at = 0; at < stream.length;) {
      const size = 1 + r.below(round % 2 === 0 ? 7 : 20_000)
      // The reader may keep views of a chunk only until it returns: copy as the router's device write does.
      reader.push(stream.subarray(at, at + size), p => got.push(Buffer.from(p)))
      at += size
    }
    assert.deepEqual(got, packets, `round ${round}`)
  }
})

test('a frame shorter than an IPv4 header is refused', () => {
  const reader = new FrameReader()
  assert.throws(() => { reader.push(Buffer.concat([frame(randomBytes(20)), Buffer.from([0, 19]), randomBytes(19)]), () => {}) }, CniError)
})
