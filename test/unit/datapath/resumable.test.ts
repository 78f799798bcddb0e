// Resumable over in-process carriers: bytes cross intact both ways while the
// carrier is swapped mid-transfer, a silent carrier is declared lost, and
// ends are delivered once everything arrived.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { duplexPair } from 'node:stream'
import { once } from 'node:events'
import { Resumable } from '../../../src/datapath/resumable.ts'

function connect (a: Resumable, b: Resumable): { cut: () => void } {
  const [x, y] = duplexPair()
  a.attach(x, b.received)
  b.attach(y, a.received)
  return { cut: () => { x.destroy(); y.destroy() } }
}

async function collect (s: Resumable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of s) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

test('bytes both ways survive two carrier swaps mid-transfer; ends arrive after the last byte', async () => {
  const a = new Resumable({ windowBytes: 256 * 1024 })
  const b = new Resumable({ windowBytes: 256 * 1024 })
  let link = connect(a, b)
  const up = randomBytes(3 * 1024 * 1024 + 17)
  const down = randomBytes(2 * 1024 * 1024 + 5)
  const gotAtB = collect(b)
  const gotAtA = collect(a)
  const lost = { a: 0, b: 0 }
  a.on('lost', () => { lost.a++ })
  b.on('lost', () => { lost.b++ })
  // Writers in chunks, with the carrier cut twice on the way.
  const writeAll = async (s: Resumable, data: Buffer): Promise<void> => {
    for (let at = 0; at < data.length; at += 100_000) {
      if (!s.write(data.subarray(at, at + 100_000))) await once(s, 'drain')
      await new Promise(resolve => setTimeout(resolve, 1))
    }
    s.end()
  }
  let written = false
  const writers = Promise.all([writeAll(a, up), writeAll(b, down)]).then(() => { written = true })
  for (let i = 0; i < 2; i++) {
    await new Promise(resolve => setTimeout(resolve, 8))
    assert.equal(written, false, 'the cut comes mid-transfer')
    link.cut()
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(a.attached, false)
    link = connect(a, b)
  }
  await writers
  assert.ok((await gotAtB).equals(up), 'a → b intact')
  assert.ok((await gotAtA).equals(down), 'b → a intact')
  assert.equal(lost.a, 2)
  assert.equal(lost.b, 2)
})

test('a carrier that goes silent while bytes are in flight is lost within silenceMs', async () => {
  const a = new Resumable({ silenceMs: 300, heartbeatMs: 50 })
  const b = new Resumable({ silenceMs: 300, heartbeatMs: 50 })
  for (const s of [a, b]) s.on('error', () => {})
  const [x, y] = duplexPair()
  a.attach(x, 0)
  b.attach(y, 0)
  b.resume()
  a.write(Buffer.alloc(1000))
  await new Promise(resolve => setTimeout(resolve, 100))
  // The path drops everything from here on, without closing.
  y.pause()
  x.pause()
  a.write(Buffer.alloc(1000))
  const t0 = Date.now()
  await once(a, 'lost')
  assert.ok(Date.now() - t0 < 700, `lost after ${Date.now() - t0} ms`)
  a.destroy()
  b.destroy()
})

test('an idle stream sends nothing and is not declared lost', async () => {
  const a = new Resumable({ silenceMs: 100, heartbeatMs: 20 })
  const b = new Resumable({ silenceMs: 100, heartbeatMs: 20 })
  for (const s of [a, b]) s.on('error', () => {})
  const [x, y] = duplexPair()
  let frames = 0
  y.on('data', () => { frames++ })
  a.attach(x, 0)
  b.attach(y, 0)
  let lost = false
  a.on('lost', () => { lost = true })
  const before = frames
  await new Promise(resolve => setTimeout(resolve, 300))
  assert.equal(lost, false)
  assert.ok(frames - before <= 1, `${frames - before} frames while idle`)
  a.destroy()
  b.destroy()
})

test('a stream idle past its heartbeats that sends again is not declared lost at its next heartbeat', async (t) => {
  t.mock.timers.enable({ apis: ['Date', 'setInterval', 'setTimeout'] })
  const a = new Resumable({ silenceMs: 1000, heartbeatMs: 250 })
  const b = new Resumable({ silenceMs: 1000, heartbeatMs: 250 })
  for (const s of [a, b]) s.on('error', () => {})
  connect(a, b)
  let lost = false
  a.on('lost', () => { lost = true })
  const got: string[] = []
  b.on('data', (d: Buffer) => got.push(d.toString()))
  // Frames cross the in-process carrier in later ticks: let them, between the heartbeats.
  const run = async (ms: number): Promise<void> => {
    for (let left = ms; left > 0; left -= 50) {
      t.mock.timers.tick(50)
      for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
    }
  }
  a.write('first')
  await run(500)
  // Idle for 10 s: after 5 s the heartbeats stop, and nothing is heard from b.
  await run(10_000)
  assert.equal(lost, false)
  // The next bytes go out just before a heartbeat, which comes before b could answer.
  t.mock.timers.tick(200)
  a.write('again')
  await run(1500)
  assert.equal(lost, false, 'lost at the first heartbeat after the idle time')
  assert.deepEqual(got, ['first', 'again'])
  a.destroy()
  b.destroy()
})

test('a peer claiming bytes never sent is refused', () => {
  const a = new Resumable()
  const [x] = duplexPair()
  a.on('error', () => {})
  a.attach(x, 10)
  assert.equal(a.destroyed, true)
})

test('a session destroyed on purpose resets the other end, which is not lost and resumes nothing', async () => {
  const a = new Resumable()
  const b = new Resumable()
  connect(a, b)
  let lost = false
  b.on('lost', () => { lost = true })
  a.destroy()
  const [err] = await once(b, 'error') as [Error & { code?: string }]
  assert.equal(err.code, 'ECONNRESET')
  assert.equal(lost, false)
  assert.equal(b.destroyed, true)
})

test('a frame cut short by the lost carrier is dropped, and sent again whole on the next one', async () => {
  const a = new Resumable()
  const b = new Resumable()
  const [x, y] = duplexPair()
  a.attach(x, 0)
  // Half of a frame reaches b, then the carrier dies.
  const frames: Buffer[] = []
  y.on('data', (d: Buffer) => { frames.push(d) })
  const [bx, by] = duplexPair()
  b.attach(by, 0)
  a.write(Buffer.from('hello, world'))
  await new Promise(resolve => setImmediate(resolve))
  const sent = Buffer.concat(frames)
  assert.ok(sent.length > 7)
  bx.write(sent.subarray(0, 7))
  await new Promise(resolve => setImmediate(resolve))
  x.destroy(); y.destroy(); bx.destroy(); by.destroy()
  await new Promise(resolve => setImmediate(resolve))
  const got = collect(b)
  connect(a, b)
  a.end()
  b.end()
  assert.equal((await got).toString(), 'hello, world')
})
