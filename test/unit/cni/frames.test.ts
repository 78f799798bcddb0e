// Pod packets framed on a channel come out whole and in order however the
// stream splits them; a frame too short or too long is refused; a peer's
// offload header is accepted only as the device itself would write it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { FrameReader, frame, checkHeader, MAX_PACKET, MIN_PACKET, PLAIN_HEADER, VNET_HEADER } from '../../../src/cni/frames.ts'
import { CniError } from '../../../src/cni/errors.ts'
import { Random } from '../../helpers/fuzz.ts'

test('packets of every size come out as sent, whatever the chunks', () => {
  const r = new Random(7)
  const packets = [MIN_PACKET, MIN_PACKET + 1, 1410, 1510, 9000, 16_394, MAX_PACKET, 60].map(n => randomBytes(n))
  const stream = Buffer.concat(packets.map(frame))
  for (let round = 0; round < 60; round++) {
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

test('a frame shorter than a header and an IPv4 header, or longer than 64 KiB and a header, is refused', () => {
  const short = Buffer.alloc(4 + MIN_PACKET - 1)
  short.writeUInt32BE(MIN_PACKET - 1, 0)
  assert.throws(() => { new FrameReader().push(Buffer.concat([frame(randomBytes(MIN_PACKET)), short]), () => {}) }, CniError)
  const long = Buffer.alloc(4)
  long.writeUInt32BE(MAX_PACKET + 1, 0)
  assert.throws(() => { new FrameReader().push(long, () => {}) }, CniError)
})

/** A header and a 1500-byte packet, with the header's fields set. */
function withHeader (fields: { flags?: number, gso?: number, segment?: number, csumStart?: number, csumOffset?: number }, ipLength = 1500): Buffer {
  const p = Buffer.alloc(VNET_HEADER + ipLength)
  p[0] = fields.flags ?? 0
  p[1] = fields.gso ?? 0
  p.writeUInt16LE(fields.segment ?? 0, 4)
  p.writeUInt16LE(fields.csumStart ?? 0, 6)
  p.writeUInt16LE(fields.csumOffset ?? 0, 8)
  return p
}

test('offload headers: what the device writes passes, anything else is named', () => {
  assert.equal(checkHeader(Buffer.concat([PLAIN_HEADER, Buffer.alloc(20)])), undefined)
  // A pod's TCP segment to be split at 1448 bytes with its checksum filled in (TCP at 20, checksum field at 16).
  assert.equal(checkHeader(withHeader({ flags: 1, gso: 1, segment: 1448, csumStart: 20, csumOffset: 16 }, 65_000)), undefined)
  assert.equal(checkHeader(withHeader({ flags: 2 })), undefined, 'checksum already checked')
  assert.equal(checkHeader(withHeader({ gso: 0x81, segment: 1448 })), undefined, 'with ECN')
  assert.match(checkHeader(withHeader({ flags: 4 })) ?? '', /flags 4/)
  assert.match(checkHeader(withHeader({ gso: 3 })) ?? '', /offload type 3/, 'UDP fragmentation offload')
  assert.match(checkHeader(withHeader({ gso: 4, segment: 1400 })) ?? '', /offload type 4/, 'TCPv6 in an IPv4 mesh')
  assert.match(checkHeader(withHeader({ gso: 1, segment: 0 })) ?? '', /segment size 0/)
  assert.match(checkHeader(withHeader({ gso: 1, segment: 1501 })) ?? '', /segment size 1501/)
  assert.match(checkHeader(withHeader({ flags: 1, csumStart: 1490, csumOffset: 16 })) ?? '', /checksum at 1490\+16/)
})
