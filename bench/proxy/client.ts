// Load clients for bench:proxy, run inside the client namespace; print one JSON line.
//   client.ts rr HOST:PORT SECONDS           64-byte request/response on one connection: p50/p99 µs
//   client.ts conn HOST:PORT SECONDS LOOPS   new connection per 1-byte exchange, LOOPS in parallel: conn/s, p50 µs
//   client.ts hold HOST:PORT COUNT           opens COUNT idle connections, prints when done, holds until stdin closes
//   client.ts rate HOST:PORT SECONDS RATE    64-byte request/response on one connection at RATE/s: p50/p99/p999 µs
//   client.ts churn HOST:PORT SECONDS RATE   RATE new connections/s, each 64 bytes out and back: p50/p99/p999 µs from connect to reply
// rate and churn never wait for a reply before the next request is due (open
// loop), so a stall of the path delays every exchange it covers; each is timed
// from its own write or connect, so the client's timer lateness is not counted.
import { connect } from 'node:net'
import type { Socket } from 'node:net'

const [mode, target, a, b] = process.argv.slice(2)
const [host, portText] = (target as string).split(':')
const port = Number(portText)

function pct (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

async function open (): Promise<Socket> {
  return await new Promise((resolve, reject) => {
    const s = connect({ host, port, noDelay: true })
    const deadline = setTimeout(() => { s.destroy(); reject(new Error('connect timed out after 10 s')) }, 10_000)
    s.once('connect', () => { clearTimeout(deadline); resolve(s) })
    s.once('error', err => { clearTimeout(deadline); reject(err) })
  })
}

if (mode === 'rr') {
  const s = await open()
  const msg = Buffer.alloc(64, 0x61)
  const times: number[] = []
  const end = performance.now() + Number(a) * 1000
  let t0 = 0
  let got = 0
  await new Promise<void>(resolve => {
    s.on('data', d => {
      got += d.length
      if (got < 64) return
      got = 0
      const now = performance.now()
      times.push((now - t0) * 1000)
      if (now >= end) { resolve(); return }
      t0 = performance.now()
      s.write(msg)
    })
    t0 = performance.now()
    s.write(msg)
  })
  s.destroy()
  times.sort((x, y) => x - y)
  console.log(JSON.stringify({ n: times.length, p50: pct(times, 0.5), p99: pct(times, 0.99) }))
} else if (mode === 'conn') {
  const end = performance.now() + Number(a) * 1000
  const times: number[] = []
  let errors = 0
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now()
      try {
        const s = await open()
        await new Promise<void>((resolve, reject) => { s.once('data', () => resolve()); s.once('error', reject); s.write('x') })
        s.destroy()
        times.push((performance.now() - t0) * 1000)
      } catch { errors++ }
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: Number(b ?? 4) }, loop))
  const seconds = (performance.now() - started) / 1000
  times.sort((x, y) => x - y)
  console.log(JSON.stringify({ n: times.length, perSecond: times.length / seconds, p50: pct(times, 0.5), errors }))
} else if (mode === 'rate') {
  const s = await open()
  const msg = Buffer.alloc(64, 0x61)
  const every = 1000 / Number(b)
  const count = Math.floor(Number(a) * 1000 / every)
  const sent: number[] = []
  const times: number[] = []
  let got = 0
  const start = performance.now()
  await new Promise<void>((resolve, reject) => {
    s.on('error', reject)
    s.on('data', d => {
      got += d.length
      while (got >= 64 && times.length < sent.length) {
        got -= 64
        times.push((performance.now() - (sent[times.length] as number)) * 1000)
      }
      if (times.length === count) resolve()
    })
    const tick = (): void => {
      // Every request due by now goes out, late ones at once.
      while (sent.length < count && start + sent.length * every <= performance.now()) {
        sent.push(performance.now())
        s.write(msg)
      }
      if (sent.length < count) setTimeout(tick, Math.max(0, start + sent.length * every - performance.now()))
    }
    tick()
  })
  s.destroy()
  times.sort((x, y) => x - y)
  console.log(JSON.stringify({ n: times.length, p50: pct(times, 0.5), p99: pct(times, 0.99), p999: pct(times, 0.999) }))
} else if (mode === 'churn') {
  const msg = Buffer.alloc(64, 0x62)
  const every = 1000 / Number(b)
  const count = Math.floor(Number(a) * 1000 / every)
  const times: number[] = []
  let errors = 0
  const once = async (): Promise<void> => {
    const t0 = performance.now()
    try {
      const s = await open()
      // An exchange that never completes (a starved or broken path) counts as an error after 10 s, not a hang.
      const deadline = setTimeout(() => { s.destroy(new Error('no reply within 10 s')) }, 10_000)
      try {
        await new Promise<void>((resolve, reject) => {
          let got = 0
          s.on('data', d => { got += d.length; if (got >= 64) resolve() })
          s.once('error', reject)
          s.once('close', () => { reject(new Error('closed before the reply')) })
          s.write(msg)
        })
      } finally {
        clearTimeout(deadline)
      }
      times.push((performance.now() - t0) * 1000)
      s.destroy()
    } catch { errors++ }
  }
  const start = performance.now()
  const pending: Array<Promise<void>> = []
  for (let i = 0; i < count; i++) {
    const due = start + i * every
    const wait = due - performance.now()
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
    pending.push(once())
  }
  await Promise.all(pending)
  times.sort((x, y) => x - y)
  console.log(JSON.stringify({ n: times.length, errors, p50: pct(times, 0.5), p99: pct(times, 0.99), p999: pct(times, 0.999) }))
} else if (mode === 'hold') {
  const sockets: Socket[] = []
  for (let i = 0; i < Number(a); i++) sockets.push(await open())
  console.log(JSON.stringify({ open: sockets.length }))
  process.stdin.resume()
  process.stdin.on('end', () => { for (const s of sockets) s.destroy(); process.exit(0) })
} else {
  console.error('usage: client.ts rr|conn|hold|rate|churn HOST:PORT ...')
  process.exit(2)
}
