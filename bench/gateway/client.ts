// Open-loop HTTP/1.1 load at a fixed rate over keep-alive connections, for bench:gateway.
//   client.ts HOST:PORT SECONDS RATE CONNECTIONS [HOST_HEADER]   (Host defaults to HOST:PORT, as wrk sends it)
// Each request is timed from the moment it was due, not from when a connection
// was free to send it, so a stall of the proxy delays every request it covers
// (no coordinated omission). Prints one JSON line: sent, ok, errors, p50/p99/p999 µs.
import { connect } from 'node:net'
import type { Socket } from 'node:net'

const [target, secondsText, rateText, connsText, hostHeader] = process.argv.slice(2)
const [host, portText] = (target as string).split(':')
const port = Number(portText)
const seconds = Number(secondsText)
const rate = Number(rateText)
const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${hostHeader ?? target as string}\r\n\r\n`)

interface Conn { socket: Socket, busy: boolean, due: number, buf: Buffer }

const times: number[] = []
let ok = 0
let errors = 0
const backlog: number[] = []
const idle: Conn[] = []

function pct (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

/** True once `buf` holds a whole response (headers and a Content-Length body, the only kind the bench's backend sends). */
function complete (c: Conn): boolean {
  const end = c.buf.indexOf('\r\n\r\n')
  if (end < 0) return false
  const m = /content-length: *(\d+)/i.exec(c.buf.subarray(0, end).toString('latin1'))
  const total = end + 4 + Number(m?.[1] ?? 0)
  if (c.buf.length < total) return false
  if (!c.buf.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 200')) errors++
  else ok++
  c.buf = c.buf.subarray(total)
  return true
}

function send (c: Conn, due: number): void {
  c.busy = true
  c.due = due
  c.socket.write(request)
}

async function open (): Promise<Conn> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true })
    const c: Conn = { socket, busy: false, due: 0, buf: Buffer.alloc(0) }
    socket.once('connect', () => resolve(c))
    socket.once('error', reject)
    socket.on('data', (d: Buffer) => {
      c.buf = c.buf.length === 0 ? d : Buffer.concat([c.buf, d])
      if (!complete(c)) return
      times.push((performance.now() - c.due) * 1000)
      c.busy = false
      const next = backlog.shift()
      if (next !== undefined) send(c, next)
      else idle.push(c)
    })
  })
}

const conns = await Promise.all(Array.from({ length: Number(connsText) }, open))
idle.push(...conns)
const start = performance.now()
const total = Math.floor(seconds * rate)
let sent = 0
await new Promise<void>(resolve => {
  const tick = (): void => {
    const now = performance.now()
    while (sent < total && start + (sent * 1000) / rate <= now) {
      const due = start + (sent * 1000) / rate
      sent++
      const c = idle.pop()
      if (c !== undefined) send(c, due)
      else backlog.push(due)
    }
    if (sent >= total) { resolve(); return }
    setTimeout(tick, 1)
  }
  tick()
})
// Let the last requests finish (at most 5 s).
const drainEnd = performance.now() + 5000
const answered = (): number => ok + errors
while (answered() < sent && performance.now() < drainEnd) await new Promise(resolve => setTimeout(resolve, 10))
for (const c of conns) c.socket.destroy()
const sorted = times.sort((a, b) => a - b)
console.log(JSON.stringify({ sent, ok, errors, p50: pct(sorted, 0.5), p99: pct(sorted, 0.99), p999: pct(sorted, 0.999) }))
