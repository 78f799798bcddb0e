// Random and mutated SOCKS5 handshakes into the parser (src/proxy/socks5-wire.ts):
// it throws nothing but Socks5ProtocolError, reads no byte past the buffer, and
// a valid handshake arriving in any chunks parses as it does whole. Then a few
// hundred of them through a real Socks5Server, which must keep answering.
// FUZZ_INPUTS and FUZZ_SEED pick the run; see src/proxy/README.md.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { Registry } from 'prom-client'
import { Socks5ProtocolError, Socks5Server, SocksReply } from '../../../src/proxy/index.ts'
import { parseGreeting, parseRequest } from '../../../src/proxy/socks5-wire.ts'
import type { Greeting, Parsed, Request } from '../../../src/proxy/socks5-wire.ts'
import { DirectDialer, EndpointRefusedError } from '../../../src/mesh/index.ts'
import type { EndpointDialer } from '../../../src/mesh/index.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { startEcho } from '../../helpers/net.ts'
import { FUZZ_INPUTS, FUZZ_SEED, Random, mutate } from '../../helpers/fuzz.ts'

const SERVER_INPUTS = 200
const NAMES = ['edge-1', 'edge-node-2', 'a', 'x'.repeat(255), 'ünïcode', '10.0.0.1']

interface Handshake { bytes: Buffer, greeting: Greeting, request: Request }

function handshake (r: Random, name = r.pick(NAMES), port = r.below(65536)): Handshake {
  const methods = [...r.bytes(r.below(4))]
  if (r.below(4) !== 0) methods.splice(r.below(methods.length + 1), 0, 0x00)
  const command = r.below(4) === 0 ? r.below(4) : 0x01
  const addressType = r.pick([0x01, 0x03, 0x03, 0x04])
  const raw = addressType !== 0x03 ? undefined : r.below(8) === 0 ? r.bytes(1 + r.below(255)) : Buffer.from(name)
  const address = raw === undefined ? r.bytes(addressType === 0x01 ? 4 : 16) : Buffer.concat([Buffer.from([raw.length]), raw])
  const request = { command, addressType, host: raw?.toString('utf8'), port }
  const bytes = Buffer.concat([
    Buffer.from([0x05, methods.length, ...methods]),
    Buffer.from([0x05, command, 0x00, addressType]), address, Buffer.from([port >> 8, port & 0xff])
  ])
  return { bytes, greeting: { methods }, request }
}

/** `buf`, but reading an index at or past its end throws: the parser must check the length first. */
function strict (buf: Buffer): Buffer {
  return new Proxy(buf, {
    get (target, key) {
      if (typeof key === 'string' && /^-?\d+$/.test(key) && (Number(key) < 0 || Number(key) >= target.length)) {
        throw new Error(`read byte ${key} of a ${target.length}-byte buffer`)
      }
      const v: unknown = Reflect.get(target, key, target)
      return typeof v === 'function' ? v.bind(target) : v
    }
  })
}

/**
 * One parse with its contract checked: `need` asks for more than there is, a
 * message claims no more than there is and reads the same from those bytes alone.
 */
function parseChecked<T> (parse: (buf: Buffer) => Parsed<T>, buf: Buffer, r: Random): Parsed<T> | undefined {
  let parsed: Parsed<T>
  try {
    parsed = parse(strict(buf))
  } catch (err) {
    if (err instanceof Socks5ProtocolError) return undefined
    throw err
  }
  if ('need' in parsed) {
    assert.ok(Number.isInteger(parsed.need) && parsed.need > buf.length, `need ${parsed.need} with ${buf.length} bytes`)
    return parsed
  }
  assert.ok(parsed.length > 0 && parsed.length <= buf.length)
  assert.deepEqual(parse(buf.subarray(0, parsed.length)), parsed, 'the message depends only on its own bytes')
  const cut = r.below(parsed.length)
  const shorter = parse(buf.subarray(0, cut))
  assert.ok('need' in shorter && shorter.need > cut && shorter.need <= parsed.length, `a ${cut}-byte prefix of a ${parsed.length}-byte message`)
  return parsed
}

/** Parses greeting then request from chunks as they arrive, like a reader that takes whatever is there. */
function parseChunks (chunks: Buffer[]): [Greeting, Request] | undefined {
  let buf = Buffer.alloc(0)
  let greeting: Greeting | undefined
  for (const chunk of chunks) {
    buf = Buffer.concat([buf, chunk])
    if (greeting === undefined) {
      const g = parseGreeting(buf)
      if ('need' in g) continue
      greeting = g.value
      buf = buf.subarray(g.length)
    }
    const q = parseRequest(buf)
    if ('value' in q) return [greeting, q.value]
  }
  return undefined
}

function split (buf: Buffer, cuts: number[]): Buffer[] {
  const at = [0, ...cuts.sort((a, b) => a - b), buf.length]
  return at.slice(1).map((end, i) => buf.subarray(at[i], end))
}

test(`socks5 fuzz: ${FUZZ_INPUTS} random and mutated handshakes into the parser (seed ${FUZZ_SEED})`, () => {
  const r = new Random(FUZZ_SEED)
  const stats = { requests: 0, refused: 0, short: 0 }
  for (let i = 0; i < FUZZ_INPUTS; i++) {
    const valid = handshake(r)
    const kind = r.below(8)
    if (kind === 0) {
      // Valid, in random chunks; every 32nd one cut at every point.
      const want = [valid.greeting, valid.request]
      const n = valid.bytes.length
      assert.deepEqual(parseChunks(split(valid.bytes, Array.from({ length: r.below(5) }, () => r.below(n + 1)))), want)
      if ((i & 31) === 0) {
        for (let k = 0; k <= n; k++) assert.deepEqual(parseChunks(split(valid.bytes, [k])), want, `cut at ${k}`)
      }
    }
    const bytes = kind === 1 ? r.bytes(r.below(64)) : kind === 0 ? valid.bytes : mutate(r, valid.bytes)
    const g = parseChecked(parseGreeting, bytes, r)
    if (g === undefined) { stats.refused++; continue }
    if ('need' in g) { stats.short++; continue }
    if (kind === 0) assert.deepEqual(g.value, valid.greeting)
    const q = parseChecked(parseRequest, bytes.subarray(g.length), r)
    if (q === undefined) { stats.refused++; continue }
    if ('need' in q) { stats.short++; continue }
    stats.requests++
    if (kind === 0) assert.deepEqual(q.value, valid.request)
    assert.ok(q.value.port >= 0 && q.value.port <= 65535)
    assert.equal(q.value.host === undefined, q.value.addressType !== 0x03)
  }
  assert.ok(stats.requests > FUZZ_INPUTS / 8 && stats.refused > 0 && stats.short > 0, JSON.stringify(stats))
})

/** Sends `bytes`, half-closes after `endAfterMs`, and returns everything the server sent until the connection closed. */
async function exchange (port: number, bytes: Buffer, endAfterMs = 0): Promise<Buffer> {
  const socket = connect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  const parts: Buffer[] = []
  socket.on('data', (d: Buffer) => parts.push(d))
  socket.write(bytes)
  const timer = setTimeout(() => socket.end(), endAfterMs)
  await new Promise(resolve => socket.once('close', resolve))
  clearTimeout(timer)
  return Buffer.concat(parts)
}

/** A CONNECT to this node's echo server, which answers after the client's FIN. */
async function answersValid (port: number, echoPort: number): Promise<void> {
  const name = Buffer.from('edge-1')
  const valid = Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, name.length]), name, Buffer.from([echoPort >> 8, echoPort & 0xff]), Buffer.from('ping')])
  const got = await exchange(port, valid)
  assert.deepEqual([...got.subarray(0, 4)], [0x05, 0x00, 0x05, SocksReply.OK])
  assert.equal(got.subarray(12).toString(), 'echo:ping')
}

test(`socks5 fuzz: ${SERVER_INPUTS} random and mutated handshakes into a real server (seed ${FUZZ_SEED})`, async () => {
  const r = new Random(FUZZ_SEED)
  const echo = await startEcho('echo:')
  const direct = new DirectDialer()
  // Only the echo server is reached: a mutated port must not touch anything else on this host.
  const dialer: EndpointDialer = {
    dialTcp: async (t, signal) => {
      if (t.port !== echo.port) throw new EndpointRefusedError('edge-1', `${t.ip}:${t.port}`, 'ECONNREFUSED')
      return await direct.dialTcp(t, signal)
    },
    dialUdp: async () => { throw new Error('no UDP through SOCKS5') }
  }
  const registry = new Registry()
  const server = new Socks5Server({ logger: noopLogger, metrics: registry, dialer, nodeAddress: async name => name === 'edge-1' ? '127.0.0.1' : null },
    { listenIp: '127.0.0.1', port: 0, nodeName: 'edge-1', handshakeTimeoutMs: 300 })
  await server.start()
  try {
    let connections = 0
    for (let i = 0; i < SERVER_INPUTS; i += 20) {
      await Promise.all(Array.from({ length: 20 }, async () => {
        const { bytes } = handshake(r, r.below(2) === 0 ? 'edge-1' : r.pick(NAMES), r.below(2) === 0 ? echo.port : r.below(65536))
        const input = r.below(8) === 0 ? r.bytes(r.below(64)) : r.below(8) === 0 ? bytes : mutate(r, bytes)
        // Most clients half-close after their bytes; some stay silent past the handshake deadline.
        await exchange(server.port(), input, r.below(4) === 0 ? 500 : 0)
      }))
      await answersValid(server.port(), echo.port)
      connections += 21
    }
    // Every connection ends with a counted result; none is left hanging in the handshake.
    const counted = async (): Promise<number> => ((await registry.getSingleMetric('edgemesh_socks5_connections_total')?.get())?.values ?? []).reduce((n, v) => n + v.value, 0)
    for (let waited = 0; await counted() < connections && waited < 2000; waited += 50) await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(await counted(), connections)
  } finally {
    await server.stop()
    echo.server.close()
  }
})
