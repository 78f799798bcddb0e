// Random and mutated control lines into the data path's wire parsers
// (src/datapath/wire.ts): parseRelayRequest, parseTargetRequest and
// parseChannelRequest never throw
// and return only well-typed requests, takeLine throws only its line-length
// refusal and splits the same however the bytes arrive, and parseIdentity
// inverts pairIdentity. FUZZ_INPUTS and FUZZ_SEED pick the run; see src/datapath/README.md.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MAX_LINE_BYTES, jsonLine, pairIdentity, parseChannelRequest, parseIdentity, parseRelayRequest, parseTargetRequest, takeLine } from '../../../src/datapath/wire.ts'
import { FUZZ_INPUTS, FUZZ_SEED, Random, mutate } from '../../helpers/fuzz.ts'

const STRINGS = ['park', 'join', 'cni', 'CNI', 'edge-1', '10.0.0.1', 'fe80::1', '', '__proto__', 'constructor', 'a>b', 'ünïcode', 'ab'.repeat(32)]
const VALUES: unknown[] = [null, true, 0, -1, 65535, 1e21, 1.5, [], {}, ['park'], { op: 'park' }]

function value (r: Random): unknown {
  return r.below(2) === 0 ? r.pick(STRINGS) : r.pick(VALUES)
}

/** A relay request, a target request, a channel request or a mix of their fields, each field sometimes of the wrong type. */
function request (r: Random): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const valid = r.below(2) === 0
  if (r.below(2) === 0) {
    out.op = valid ? r.pick(['park', 'join']) : value(r)
    out.node = valid ? r.pick(STRINGS) : value(r)
    if (r.below(2) === 0) out.target = valid ? r.pick(STRINGS) : value(r)
    out.mac = valid ? r.bytes(32).toString('hex') : value(r)
  } else {
    out.ip = valid ? r.pick(STRINGS) : value(r)
    out.port = valid ? r.below(65536) : value(r)
  }
  if (r.below(4) === 0) out.channel = valid ? r.pick(STRINGS) : value(r)
  if (r.below(8) === 0) out[r.pick(STRINGS)] = value(r)
  return out
}

/** What a relay may act on: the fields it reads, with their types. */
function checkRelayRequest (line: string): void {
  const got = parseRelayRequest(line)
  if (got === undefined) return
  assert.ok(got.op === 'park' || got.op === 'join')
  assert.equal(typeof got.node, 'string')
  assert.equal(typeof got.mac, 'string')
  assert.ok(got.target === undefined || typeof got.target === 'string')
}

function checkTargetRequest (line: string): void {
  const got = parseTargetRequest(line)
  if (got === undefined) return
  assert.equal(typeof got.ip, 'string')
  assert.equal(typeof got.port, 'number')
}

function checkChannelRequest (line: string): void {
  const got = parseChannelRequest(line)
  if (got === undefined) return
  assert.match(got.channel, /^[a-z0-9-]{1,32}$/)
}

/** takeLine over `chunks` as readLine feeds it: the line and everything after it, or the refusal. */
function takeFromChunks (chunks: Buffer[]): { line: string, rest: Buffer } | 'refused' | undefined {
  let buf = Buffer.alloc(0)
  for (const [i, chunk] of chunks.entries()) {
    buf = Buffer.concat([buf, chunk])
    try {
      const got = takeLine(buf)
      if (got !== undefined) return { line: got.line, rest: Buffer.concat([got.rest, ...chunks.slice(i + 1)]) }
    } catch (err) {
      assert.ok(err instanceof Error && Object.getPrototypeOf(err) === Error.prototype, `not takeLine's own error: ${String(err)}`)
      assert.equal(err.message, `control line longer than ${MAX_LINE_BYTES} bytes`)
      return 'refused'
    }
  }
  return undefined
}

test(`data path wire fuzz: ${FUZZ_INPUTS} random and mutated control lines (seed ${FUZZ_SEED})`, () => {
  const r = new Random(FUZZ_SEED)
  const stats = { relay: 0, target: 0, lines: 0, refused: 0 }
  for (let i = 0; i < FUZZ_INPUTS; i++) {
    const json = jsonLine(request(r)).slice(0, -1)
    // What the line says, as JSON tells it.
    const sent = JSON.parse(json) as Record<string, unknown>
    const kind = r.below(4)
    const line = kind === 0 ? json : kind === 1 ? r.bytes(r.below(64)).toString('utf8') : mutate(r, Buffer.from(json)).toString('utf8')
    checkRelayRequest(line)
    checkTargetRequest(line)
    checkChannelRequest(line)
    if (kind === 0) {
      // Well-formed requests are read back as sent.
      const relay = parseRelayRequest(line)
      const { op, node, target, mac } = sent
      const isRelay = (op === 'park' || op === 'join') && typeof node === 'string' && typeof mac === 'string' && (target === undefined || typeof target === 'string')
      assert.deepEqual(relay, isRelay ? { op, node, mac, ...(target === undefined ? {} : { target }) } : undefined)
      if (relay !== undefined) stats.relay++
      const isTarget = typeof sent.ip === 'string' && typeof sent.port === 'number'
      assert.deepEqual(parseTargetRequest(line), isTarget ? { ip: sent.ip, port: sent.port, frames: false } : undefined)
      if (isTarget) stats.target++
      const isChannel = typeof sent.channel === 'string' && /^[a-z0-9-]{1,32}$/.test(sent.channel)
      assert.deepEqual(parseChannelRequest(line), isChannel ? { channel: sent.channel } : undefined)
    }

    // The same bytes in two or three chunks: the same line and rest, or the same refusal.
    const long = r.below(16) === 0
    const stream = long ? Buffer.concat([r.bytes(MAX_LINE_BYTES - 8 + r.below(16)).map(b => b === 0x0a ? 0x20 : b), Buffer.from('\n')]) : mutate(r, Buffer.from(jsonLine(sent) + jsonLine(sent)))
    const cuts = [r.below(stream.length + 1), r.below(stream.length + 1)].sort((a, b) => a - b)
    const whole = takeFromChunks([stream])
    assert.deepEqual(takeFromChunks([stream.subarray(0, cuts[0]), stream.subarray(cuts[0], cuts[1]), stream.subarray(cuts[1])]), whole)
    if (whole === 'refused') { stats.refused++; continue }
    if (whole === undefined) { assert.equal(stream.indexOf(0x0a), -1); continue }
    stats.lines++
    const at = stream.indexOf(0x0a)
    assert.ok(at <= MAX_LINE_BYTES)
    assert.equal(whole.line, stream.subarray(0, at).toString('utf8'))
    assert.deepEqual(whole.rest, stream.subarray(at + 1))
  }
  for (const [k, n] of Object.entries(stats)) assert.ok(n > FUZZ_INPUTS / 100, `${k}: ${JSON.stringify(stats)}`)
})

test(`data path wire fuzz: ${FUZZ_INPUTS} random identities (seed ${FUZZ_SEED})`, () => {
  const r = new Random(FUZZ_SEED + 1)
  const name = (): string => r.below(2) === 0 ? r.pick(STRINGS) : r.bytes(r.below(12)).toString('latin1')
  for (let i = 0; i < FUZZ_INPUTS; i++) {
    const client = name()
    const server = name()
    const identity = r.below(4) === 0 ? mutate(r, Buffer.from(pairIdentity(client, server))).toString('utf8') : pairIdentity(client, server)
    const got = parseIdentity(identity)
    if (got !== undefined) {
      // Both names present, the client's without '>', and nothing lost.
      assert.ok(got.client !== '' && got.server !== '' && !got.client.includes('>'))
      assert.equal(pairIdentity(got.client, got.server), identity)
    }
    if (identity === pairIdentity(client, server) && client !== '' && server !== '' && !client.includes('>')) {
      assert.deepEqual(got, { client, server })
    }
  }
})
