// TcpMux (the TCP-punched direct path) over real TCP sockets on loopback:
// streams both ways, per-stream flow control, reset, maxStreams, the
// connection's loss, ping/pong, and raw frames from a peer that breaks the rules.
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { once } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import { STREAM_WINDOW, TcpMux } from '../../../src/nat/tcp-mux.ts'
import type { TcpMuxInit } from '../../../src/nat/tcp-mux.ts'

const TYPE = { open: 1, data: 2, credit: 3, end: 4, reset: 5, ping: 6, pong: 7 } as const
const KiB = 1024
const MiB = 1024 * KiB

interface Side {
  socket: Socket
  mux: TcpMux
  /** The reason given to onClose, once it fired. */
  closed: Promise<string>
  /** The next stream the peer opened (in order). */
  accept: () => Promise<Duplex>
  /** Every stream the peer opened so far. */
  accepted: Duplex[]
}

/** The errors streams emitted (every stream here gets a listener, so none is unhandled). */
const errors = new WeakMap<Duplex, Error>()

function guard (s: Duplex): Duplex {
  s.on('error', err => { errors.set(s, err) })
  return s
}

/** Resolves when the stream closed, errored or not. */
async function closedStream (s: Duplex): Promise<void> {
  if (s.closed) return
  await new Promise(resolve => s.once('close', resolve))
}

function side (socket: Socket, init: Omit<TcpMuxInit, 'onStream'>): Side {
  const accepted: Duplex[] = []
  const waiting: Array<(s: Duplex) => void> = []
  let taken = 0
  const mux = new TcpMux(socket, {
    ...init,
    onStream: s => {
      accepted.push(guard(s))
      waiting.shift()?.(s)
    }
  })
  const closed = new Promise<string>(resolve => { mux.onClose(resolve) })
  const accept = async (): Promise<Duplex> => {
    const i = taken++
    const s = accepted[i]
    if (s !== undefined) return s
    return await new Promise(resolve => waiting.push(resolve))
  }
  return { socket, mux, closed, accept, accepted }
}

/** Two ends of one loopback TCP connection: the client's and the server's socket. */
async function connection (t: TestContext): Promise<[Socket, Socket]> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection') as Promise<[Socket]>
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1')
  await once(client, 'connect')
  const [theirs] = await accepted
  t.after(() => {
    client.destroy()
    theirs.destroy()
    server.close()
  })
  return [client, theirs]
}

/** A mux on each end: `a` the initiator (odd streams), `b` the other. */
async function muxPair (t: TestContext, a: Partial<TcpMuxInit> = {}, b: Partial<TcpMuxInit> = {}): Promise<{ a: Side, b: Side }> {
  const [ca, cb] = await connection(t)
  const sa = side(ca, { ...a, initiator: true })
  const sb = side(cb, { ...b, initiator: false })
  t.after(() => { sa.mux.close('test over'); sb.mux.close('test over') })
  return { a: sa, b: sb }
}

function frame (type: number, id: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9)
  header[0] = type
  header.writeUInt32BE(id, 1)
  header.writeUInt32BE(body.length, 5)
  return Buffer.concat([header, body])
}

function sha256 (b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

/** The stream's bytes up to its end. Not `for await`: that destroys the Duplex at the end, while its other half may still be writing. */
async function readAll (s: Duplex): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    s.on('data', (c: Buffer) => chunks.push(c))
    s.once('end', () => { resolve(Buffer.concat(chunks)) })
    s.once('error', reject)
    s.resume()
  })
}

/** Writes `data` in chunks of random sizes (some past one 64 KiB frame), waiting on backpressure, then ends. */
async function writeAll (s: Duplex, data: Buffer): Promise<void> {
  for (let i = 0; i < data.length;) {
    const n = Math.min(data.length - i, 1 + Math.floor(Math.random() * 128 * KiB))
    const ok = s.write(data.subarray(i, i + n))
    i += n
    if (!ok) await once(s, 'drain')
  }
  await new Promise<void>(resolve => s.end(resolve))
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

async function within<T> (ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: nothing after ${ms} ms`)) }, ms) })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function until (what: string | (() => string), check: () => boolean, ms = 1000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`)
    await sleep(5)
  }
}

/** Echoes a stream's bytes back and ends when it ends. */
function echo (s: Duplex): void {
  s.pipe(s)
}

test('a stream opened on one side appears on the other; 5 MB each way arrive intact and end on both sides', { timeout: 10_000 }, async t => {
  const { a, b } = await muxPair(t)
  const mine = guard(a.mux.open())
  const theirs = await within(1000, 'the stream on the other side', b.accept())
  assert.equal(b.mux.streams, 1)
  // Like a socket's, for the data path's logs.
  assert.equal((theirs as Duplex & { remoteAddress?: string }).remoteAddress, '127.0.0.1')

  const up = randomBytes(5 * MiB)
  const down = randomBytes(5 * MiB)
  const [gotUp, gotDown] = await within(5000, 'both transfers', Promise.all([readAll(theirs), readAll(mine), writeAll(mine, up), writeAll(theirs, down)]))
  assert.equal(gotUp.length, up.length)
  assert.equal(sha256(gotUp), sha256(up))
  assert.equal(gotDown.length, down.length)
  assert.equal(sha256(gotDown), sha256(down))
  assert.ok(mine.readableEnded && theirs.readableEnded, 'both readables ended')
  assert.equal(errors.get(mine), undefined)
  assert.equal(errors.get(theirs), undefined)
  // Ended both ways: neither mux keeps the stream.
  assert.equal(a.mux.streams, 0)
  assert.equal(b.mux.streams, 0)
  assert.equal(a.mux.closed, false)
})

test('flow control: a reader that does not read holds its sender back without blocking the other streams', { timeout: 10_000 }, async t => {
  const { a, b } = await muxPair(t)
  const slow = guard(a.mux.open())
  const slowThere = await within(1000, 'the slow stream', b.accept())
  slowThere.pause()
  const receivedBefore = b.socket.bytesRead

  const payload = randomBytes(4 * MiB)
  let lastWritten = false
  for (let i = 0; i < payload.length; i += 64 * KiB) {
    const last = i + 64 * KiB >= payload.length
    slow.write(payload.subarray(i, i + 64 * KiB), last ? () => { lastWritten = true } : undefined)
  }
  await sleep(300)
  assert.equal(lastWritten, false, 'the last write is not done while the peer does not read')
  assert.equal(slow.writableNeedDrain, true)
  assert.ok(slow.writableLength > 3 * MiB, `${slow.writableLength} bytes still held by the sender`)
  const received = b.socket.bytesRead - receivedBefore
  assert.ok(received >= STREAM_WINDOW / 2 && received <= STREAM_WINDOW + 16 * KiB, `the peer received ${received} bytes, the window is ${STREAM_WINDOW}`)
  assert.ok(slowThere.readableLength <= STREAM_WINDOW, `${slowThere.readableLength} bytes buffered at the reader`)

  // Meanwhile another stream on the same connection answers promptly, both ways.
  const other = guard(a.mux.open())
  const otherThere = await within(500, 'the second stream', b.accept())
  echo(otherThere)
  const t0 = Date.now()
  const echoed = readAll(other)
  other.end('are you there?')
  assert.equal((await within(1000, 'the echo', echoed)).toString(), 'are you there?')
  assert.ok(Date.now() - t0 < 500, `echo took ${Date.now() - t0} ms`)

  // Reading again lets everything through.
  slow.end()
  const got = await within(5000, 'the slow stream\'s bytes', readAll(slowThere))
  assert.equal(got.length, payload.length)
  assert.equal(sha256(got), sha256(payload))
  assert.equal(lastWritten, true)
})

test('destroy() on one side resets the stream on the other; the mux stays usable', { timeout: 5000 }, async t => {
  const { a, b } = await muxPair(t)
  const mine = guard(a.mux.open())
  mine.write('hello')
  const theirs = await within(1000, 'the stream', b.accept())
  const [first] = await within(1000, 'the first bytes', once(theirs, 'data') as Promise<[Buffer]>)
  assert.equal(first.toString(), 'hello')

  theirs.destroy()
  await within(1000, 'the reset to arrive', closedStream(mine))
  assert.match(errors.get(mine)?.message ?? '', /reset/)
  assert.equal(a.mux.streams, 0)
  assert.equal(b.mux.streams, 0)
  assert.equal(a.mux.closed, false)

  // New streams still work, opened from either side.
  const again = guard(a.mux.open())
  const againThere = await within(1000, 'a new stream', b.accept())
  echo(againThere)
  const echoed = readAll(again)
  again.end('still here')
  assert.equal((await within(1000, 'the echo', echoed)).toString(), 'still here')

  const back = guard(b.mux.open())
  const backThere = await within(1000, 'a stream from the other side', a.accept())
  echo(backThere)
  const echoedBack = readAll(back)
  back.end('and back')
  assert.equal((await within(1000, 'the echo', echoedBack)).toString(), 'and back')
})

test('the TCP connection closing ends every open stream with an error and closes the mux', { timeout: 5000 }, async t => {
  const { a, b } = await muxPair(t)
  const mine = [guard(a.mux.open()), guard(a.mux.open()), guard(b.mux.open())]
  await within(1000, 'the streams on both sides', Promise.all([b.accept(), b.accept(), a.accept()]))
  const theirs = [...b.accepted, ...a.accepted]
  for (const s of [...mine, ...theirs]) s.write('x')

  a.socket.destroy()
  const [reasonA, reasonB] = await within(1000, 'both muxes to close', Promise.all([a.closed, b.closed]))
  assert.match(reasonA, /TCP connection closed/)
  assert.match(reasonB, /closed/)
  await within(1000, 'every stream to close', Promise.all([...mine, ...theirs].map(closedStream)))
  for (const s of [...mine, ...theirs]) assert.match(errors.get(s)?.message ?? 'no error', /direct path lost/)
  assert.equal(a.mux.closed, true)
  assert.equal(b.mux.closed, true)
  assert.equal(a.mux.streams, 0)
  assert.throws(() => a.mux.open(), /closed/)
  assert.throws(() => b.mux.open(), /closed/)
})

test('streams past the peer\'s maxStreams are reset; the first ones work', { timeout: 5000 }, async t => {
  const { a, b } = await muxPair(t, {}, { maxStreams: 3 })
  const mine = Array.from({ length: 5 }, () => guard(a.mux.open()))
  await within(1000, 'the refused streams to be reset', Promise.all(mine.slice(3).map(closedStream)))
  for (const s of mine.slice(3)) assert.match(errors.get(s)?.message ?? 'no error', /reset/)
  assert.equal(b.accepted.length, 3)
  assert.equal(b.mux.streams, 3)
  for (const s of b.accepted) echo(s)
  const echoed = await within(1000, 'the echoes', Promise.all(mine.slice(0, 3).map(async (s, i) => {
    const got = readAll(s)
    s.end(`stream ${i}`)
    return (await got).toString()
  })))
  assert.deepEqual(echoed, ['stream 0', 'stream 1', 'stream 2'])
  assert.equal(a.mux.closed, false)
})

test('a frame longer than 64 KiB closes the mux', { timeout: 5000 }, async t => {
  const [raw, socket] = await connection(t)
  const s = side(socket, { initiator: false })
  const rawClosed = once(raw, 'close')
  raw.on('error', () => {})
  raw.resume()
  const header = frame(TYPE.data, 1).subarray(0, 9)
  header.writeUInt32BE(MiB, 5)
  raw.write(header)
  assert.match(await within(1000, 'the mux to close', s.closed), /1048576/)
  assert.equal(s.mux.closed, true)
  await within(1000, 'the connection to close', rawClosed)
})

test('data past a stream\'s window (no credit given) closes the mux', { timeout: 5000 }, async t => {
  const [raw, socket] = await connection(t)
  const s = side(socket, { initiator: false })
  const rawClosed = once(raw, 'close')
  raw.on('error', () => {})
  raw.resume()
  // Acting as the initiator: stream 1, then exactly the window, 64 KiB a frame.
  raw.write(frame(TYPE.open, 1))
  const chunk = randomBytes(64 * KiB)
  for (let sent = 0; sent < STREAM_WINDOW; sent += chunk.length) raw.write(frame(TYPE.data, 1, chunk))
  const stream = await within(1000, 'the stream', s.accept())
  await sleep(100)
  assert.equal(s.mux.closed, false, 'the window itself is allowed')
  assert.equal(stream.readableLength, STREAM_WINDOW)

  // One more frame without credit: past the window.
  raw.write(frame(TYPE.data, 1, chunk))
  assert.match(await within(1000, 'the mux to close', s.closed), /stream 1 sent past its window/)
  await within(1000, 'the connection to close', rawClosed)
  await within(1000, 'the stream to close', closedStream(stream))
  assert.match(errors.get(stream)?.message ?? 'no error', /direct path lost/)
})

test('a ping is answered with a pong carrying its nonce', { timeout: 5000 }, async t => {
  const pongs: number[] = []
  let pong: () => void = () => {}
  const { a, b } = await muxPair(t, { onPong: n => { pongs.push(n); pong() } })
  const answered = new Promise<void>(resolve => { pong = resolve })
  a.mux.ping(0xdeadbeef)
  await within(1000, 'the pong', answered)
  assert.deepEqual(pongs, [0xdeadbeef])
  assert.equal(a.mux.closed, false)
  assert.equal(b.mux.closed, false)
})

// A stream's write is done once the socket takes more. Node emits 'drain'
// only after a write returned false, so a frame the kernel did not take at
// once, leaving less than the socket's highWaterMark queued, must not wait
// for one (it stalled the stream for good). Here a peer that stops reading for
// a while fills the kernel's buffers with 1000-byte writes, as a slow link would.
test('a stream\'s writes go on once a backed-up connection drains', { timeout: 10_000 }, async t => {
  const [socket, raw] = await connection(t)
  const s = side(socket, { initiator: true })
  raw.on('error', () => {})
  const stream = guard(s.mux.open())
  // The peer's credit lets the stream send far past its window: only TCP holds it back.
  const credit = Buffer.alloc(4)
  credit.writeUInt32BE(1 << 30, 0)
  raw.write(frame(TYPE.credit, 1, credit))
  await until('the credit', () => socket.bytesRead >= 13)

  const chunk = Buffer.alloc(1000, 1)
  let written = 0
  let done = 0
  while (socket.writableLength === 0 && written < 64 * 1024) {
    for (let i = 0; i < 1024; i++) stream.write(chunk, () => { done++ })
    written += 1024
    await sleep(1)
  }
  assert.ok(socket.writableLength > 0, 'the kernel\'s buffers filled')

  // The peer reads again: every write completes.
  raw.resume()
  await until(() => `the writes: ${done} of ${written} done, ${socket.writableLength} bytes queued on the socket`, () => done === written, 1000)
})
