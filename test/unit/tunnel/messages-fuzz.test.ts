// Random and mutated frames of upstream's handshake messages into the codec
// (src/tunnel/messages.ts): takeFrame and decodeProxyBody throw only their own
// errors (plain Errors naming the problem, never a RangeError or TypeError),
// and random valid messages survive encode → frame → decode, in any chunks.
// FUZZ_INPUTS and FUZZ_SEED pick the run; see src/tunnel/README.md.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MAX_MESSAGE, decodeProxyBody, encodeDiscovery, encodeProxy, takeFrame } from '../../../src/tunnel/messages.ts'
import type { ProxyMessage } from '../../../src/tunnel/messages.ts'
import { FUZZ_INPUTS, FUZZ_SEED, Random, mutate } from '../../helpers/fuzz.ts'

const OWN_ERRORS = /^(bad length prefix|handshake message of [\d.e+]+ bytes exceeds 4096|truncated field tag|truncated varint|truncated bytes field|unsupported wire type \d)$/
const TEXTS = ['tcp', 'udp', 'MDNS', 'DHT', 'ke-edge1', '10.244.1.5', 'fe80::1', '', 'ünïcode ✓', 'x'.repeat(300)]

/** A string whose UTF-8 round-trips: no lone surrogates. */
function text (r: Random): string {
  if (r.below(2) === 0) return r.pick(TEXTS)
  return Array.from({ length: r.below(24) }, () => String.fromCodePoint(r.below(4) === 0 ? r.below(0xd800) : 0x20 + r.below(0x5f))).join('')
}

function message (r: Random): ProxyMessage {
  const m: ProxyMessage = { type: r.below(4) === 0 ? r.next() : r.below(3) }
  if (r.below(4) !== 0) m.protocol = text(r)
  if (r.below(4) !== 0) m.nodeName = text(r)
  if (r.below(4) !== 0) m.ip = text(r)
  if (r.below(4) !== 0) m.port = r.below(65536)
  return m
}

/** The call's result, or the codec's own error it threw; any other error fails the test. */
function own<T> (call: () => T): { value: T } | { error: Error } {
  try {
    return { value: call() }
  } catch (err) {
    assert.ok(err instanceof Error && Object.getPrototypeOf(err) === Error.prototype && OWN_ERRORS.test(err.message), `not the codec's own error: ${String(err)}`)
    return { error: err }
  }
}

/** Enough bytes to finish (or refuse) any frame: zeros end a length prefix, and a body is at most MAX_MESSAGE. */
const MORE = Buffer.alloc(MAX_MESSAGE + 10)

test(`tunnel messages fuzz: ${FUZZ_INPUTS} random and mutated frames and bodies (seed ${FUZZ_SEED})`, () => {
  const r = new Random(FUZZ_SEED)
  const stats = { frames: 0, waiting: 0, refusedFrames: 0, decoded: 0, refusedBodies: 0 }
  for (let i = 0; i < FUZZ_INPUTS; i++) {
    const valid = encodeProxy(message(r))
    const kind = r.below(4)
    const input = kind === 0 ? r.bytes(r.below(48)) : kind === 1 ? Buffer.concat([Buffer.from([r.below(64)]), r.bytes(r.below(64))]) : mutate(r, valid)
    const taken = own(() => takeFrame(input))
    if ('error' in taken) {
      stats.refusedFrames++
    } else if (taken.value === undefined) {
      // Waiting for more is right only if more bytes can finish the frame (or refuse it).
      stats.waiting++
      const more = own(() => takeFrame(Buffer.concat([input, MORE])))
      assert.ok('error' in more || more.value !== undefined, `waits on ${input.toString('hex')}`)
    } else {
      stats.frames++
      const { body, rest } = taken.value
      assert.ok(body.length <= MAX_MESSAGE)
      assert.deepEqual(Buffer.concat([body, rest]), input.subarray(input.length - body.length - rest.length), 'body and rest are the end of the input')
    }
    // The body of a frame, mutated or noise (most frames above no longer have a body of their own).
    const prefix = (valid[0] as number) < 0x80 ? 1 : 2
    const body = r.below(4) === 0 ? r.bytes(r.below(48)) : mutate(r, valid.subarray(prefix))
    const decoded = own(() => decodeProxyBody(body))
    if ('error' in decoded) { stats.refusedBodies++; continue }
    stats.decoded++
    const m = decoded.value
    assert.equal(typeof m.type, 'number')
    for (const key of ['protocol', 'nodeName', 'ip'] as const) assert.ok(m[key] === undefined || typeof m[key] === 'string')
    assert.ok(m.port === undefined || Number.isFinite(m.port))
  }
  for (const [k, n] of Object.entries(stats)) assert.ok(n > FUZZ_INPUTS / 50, `${k}: ${JSON.stringify(stats)}`)
})

test(`tunnel messages fuzz: ${FUZZ_INPUTS} random messages round-trip, split anywhere (seed ${FUZZ_SEED})`, () => {
  const r = new Random(FUZZ_SEED + 1)
  for (let i = 0; i < FUZZ_INPUTS; i++) {
    const m = message(r)
    const discovery = r.below(4) === 0
    const sent = discovery ? { type: m.type, protocol: m.protocol ?? '', nodeName: m.nodeName ?? '' } : m
    const encoded = discovery ? encodeDiscovery(m) : encodeProxy(m)
    // The data stream that follows the message must come out untouched.
    const data = r.bytes(r.below(16))
    const stream = Buffer.concat([encoded, data])
    const frame = takeFrame(stream)
    assert.ok(frame !== undefined)
    assert.deepEqual(frame.rest, data)
    assert.deepEqual(decodeProxyBody(frame.body), sent)
    const cut = r.below(encoded.length)
    assert.equal(takeFrame(stream.subarray(0, cut)), undefined, `a ${cut}-byte prefix of a ${encoded.length}-byte frame waits for more`)
  }
})
