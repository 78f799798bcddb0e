// Load for bench:soak, run inside the client node's namespace: long-lived
// echo connections, DNS queries and new connections at steady rates, then
// `factor` times the rates (overload), then the steady rates again (recovery).
//
//   load.ts --target 10.96.0.41:7000 --dns 169.254.96.16:53 --name echo.soak.svc.cluster.local [--minutes 15 --overload-seconds 60 --recovery-seconds 90 --long 200 --dns-rate 2000 --conn-rate 50 --factor 5]
//
// Prints JSON lines: {"ready"} once the long-lived connections are open (the
// clock starts there), {"phase"} as each phase starts, one line per 10 s window
// (and per 1 s window in overload and recovery) counting what was sent in it,
// printed once all of that has settled, and {"done"}. A DNS query is answered
// when an A record for the target's ClusterIP arrives within 1 s; a connection
// or an echo is ok when all 64 random bytes come back in order within 5 s.
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import dnsPacket from 'dns-packet'

const { values: opt } = parseArgs({
  options: {
    target: { type: 'string', default: '10.96.0.41:7000' },
    dns: { type: 'string', default: '169.254.96.16:53' },
    name: { type: 'string', default: 'echo.soak.svc.cluster.local' },
    minutes: { type: 'string', default: '15' },
    'overload-seconds': { type: 'string', default: '60' },
    'recovery-seconds': { type: 'string', default: '90' },
    long: { type: 'string', default: '200' },
    'dns-rate': { type: 'string', default: '2000' },
    'conn-rate': { type: 'string', default: '50' },
    factor: { type: 'string', default: '5' }
  }
})
const [host, portText] = opt.target.split(':') as [string, string]
const port = Number(portText)
const [dnsHost, dnsPortText] = opt.dns.split(':') as [string, string]
const dnsPort = Number(dnsPortText)
const STEADY = Number(opt.minutes) * 60
const OVERLOAD_END = STEADY + Number(opt['overload-seconds'])
const END = OVERLOAD_END + Number(opt['recovery-seconds'])
const LONG = Number(opt.long)
const DNS_RATE = Number(opt['dns-rate'])
const CONN_RATE = Number(opt['conn-rate'])
const FACTOR = Number(opt.factor)
const DNS_TIMEOUT_MS = 1000
const ECHO_TIMEOUT_MS = 5000
const SIZE = 64

type Phase = 'steady' | 'overload' | 'recovery'
const phaseAt = (t: number): Phase => t < STEADY ? 'steady' : t < OVERLOAD_END ? 'overload' : 'recovery'

interface Window {
  span: number
  t: number
  phase: Phase
  /** Things sent in this window that have not settled yet. */
  pending: number
  long: { ok: number, mismatched: number, failed: number, reopened: number }
  dns: { sent: number, answered: number, wrong: number }
  conn: { attempted: number, ok: number, mismatched: number, failed: number, ms: number[] }
  /** This program's event-loop delay over the window, ms: a late loop would count answers as late. */
  loop?: { p99: number, max: number }
}

let t0 = 0
const elapsed = (): number => (performance.now() - t0) / 1000
const windows = { 10: new Map<number, Window>(), 1: new Map<number, Window>() }
const nextToPrint = { 10: 0, 1: STEADY }

function windowOf (span: 10 | 1, key: number): Window {
  let w = windows[span].get(key)
  if (w === undefined) {
    w = { span, t: key * span, phase: phaseAt(key * span), pending: 0, long: { ok: 0, mismatched: 0, failed: 0, reopened: 0 }, dns: { sent: 0, answered: 0, wrong: 0 }, conn: { attempted: 0, ok: 0, mismatched: 0, failed: 0, ms: [] } }
    windows[span].set(key, w)
  }
  return w
}

/** The windows of now: the 10 s one, and the 1 s one after the steady phase (the recovery is timed in those). */
function current (): Window[] {
  const t = elapsed()
  return t < STEADY ? [windowOf(10, Math.floor(t / 10))] : [windowOf(10, Math.floor(t / 10)), windowOf(1, Math.floor(t))]
}

/** Counts something sent now in its windows; `settle` counts its outcome there later. */
function begin (count: (w: Window) => void): { settle: (outcome: (w: Window) => void) => void } {
  const ws = current()
  for (const w of ws) { count(w); w.pending++ }
  let settled = false
  return {
    settle: outcome => {
      if (settled) return
      settled = true
      for (const w of ws) { outcome(w); w.pending-- }
    }
  }
}

function pct (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

/** Prints every window that has ended and settled, in order; true when the last one is out. */
function printSettled (): boolean {
  const t = elapsed()
  for (const span of [10, 1] as const) {
    while (nextToPrint[span] * span < END && (nextToPrint[span] + 1) * span <= t) {
      const w = windowOf(span, nextToPrint[span])
      if (w.pending > 0) break
      const ms = w.conn.ms.sort((a, b) => a - b)
      const round = (x: number): number => Math.round(x * 10) / 10
      console.log(JSON.stringify({ span, t: w.t, phase: w.phase, long: w.long, dns: w.dns, conn: { ...w.conn, ms: undefined, p50: round(pct(ms, 0.5)), p99: round(pct(ms, 0.99)) }, loop: w.loop }))
      windows[span].delete(nextToPrint[span])
      nextToPrint[span]++
    }
  }
  return nextToPrint[10] * 10 >= END && nextToPrint[1] >= END
}

/** Checks bytes coming back against the bytes sent, in order. */
class Echoes {
  readonly #sent: Array<{ bytes: Buffer, got: number, sentAt: number, settle: (outcome: (w: Window) => void) => void }> = []

  add (bytes: Buffer, settle: (outcome: (w: Window) => void) => void): void {
    this.#sent.push({ bytes, got: 0, sentAt: performance.now(), settle })
  }

  /** 'mismatch' when a byte differs from the one sent at that place (or nothing was sent); calls `ok` per complete echo. */
  check (data: Buffer, ok: (settle: (outcome: (w: Window) => void) => void) => void): 'mismatch' | undefined {
    let off = 0
    while (off < data.length) {
      const head = this.#sent[0]
      if (head === undefined) return 'mismatch'
      const n = Math.min(SIZE - head.got, data.length - off)
      if (!data.subarray(off, off + n).equals(head.bytes.subarray(head.got, head.got + n))) return 'mismatch'
      head.got += n
      off += n
      if (head.got === SIZE) { this.#sent.shift(); ok(head.settle) }
    }
  }

  oldest (): number { return this.#sent[0]?.sentAt ?? Infinity }
  shift (): ((outcome: (w: Window) => void) => void) | undefined { return this.#sent.shift()?.settle }
}

let stopping = false

/** One long-lived connection: 64 bytes a second, echoes verified, reopened when it dies. */
class LongLived {
  #sock: Socket | undefined
  #up = false
  #echoes = new Echoes()

  open (): void {
    const s = connect({ host, port, noDelay: true })
    this.#sock = s
    this.#echoes = new Echoes()
    s.once('connect', () => { this.#up = true })
    s.on('data', d => {
      const r = this.#echoes.check(d, settle => settle(w => { w.long.ok++ }))
      if (r === 'mismatch') {
        this.#echoes.shift()?.(w => { w.long.mismatched++ })
        s.destroy()
      }
    })
    s.on('error', () => {})
    s.once('close', () => {
      this.#up = false
      for (let settle = this.#echoes.shift(); settle !== undefined; settle = this.#echoes.shift()) settle(w => { w.long.failed++ })
      if (stopping) return
      for (const w of current()) w.long.reopened++
      setTimeout(() => this.open(), 1000)
    })
  }

  get up (): boolean { return this.#up }

  /** Sends one echo; a second without a connection counts as a failed echo. */
  tick (): void {
    const { settle } = begin(() => {})
    if (!this.#up || this.#sock === undefined) { settle(w => { w.long.failed++ }); return }
    const bytes = randomBytes(SIZE)
    this.#echoes.add(bytes, settle)
    this.#sock.write(bytes)
  }

  /** An echo older than the timeout ends the connection (its pending echoes fail). */
  sweep (now: number): void {
    if (now - this.#echoes.oldest() > ECHO_TIMEOUT_MS) this.#sock?.destroy()
  }

  close (): void { this.#sock?.destroy() }
}

/** A new connection: connect, 64 random bytes, verified echo, close. */
function newConnection (): void {
  const { settle } = begin(w => { w.conn.attempted++ })
  const start = performance.now()
  const echoes = new Echoes()
  const s = connect({ host, port, noDelay: true })
  const finish = (outcome: (w: Window) => void): void => {
    clearTimeout(timer)
    s.destroy()
    settle(outcome)
  }
  const timer = setTimeout(() => finish(w => { w.conn.failed++ }), ECHO_TIMEOUT_MS)
  s.once('connect', () => {
    const bytes = randomBytes(SIZE)
    echoes.add(bytes, settle)
    s.write(bytes)
  })
  s.on('data', d => {
    const r = echoes.check(d, () => {
      const ms = performance.now() - start
      finish(w => { w.conn.ok++; w.conn.ms.push(ms) })
    })
    if (r === 'mismatch') finish(w => { w.conn.mismatched++ })
  })
  s.on('error', () => {})
  s.once('close', () => finish(w => { w.conn.failed++ }))
}

// DNS: one socket, queries keyed by ID; the Map keeps send order, so the timeout sweep stops at the first young one.
const udp = createSocket('udp4')
const query = dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: opt.name }] })
const queries = new Map<number, { sentAt: number, settle: (outcome: (w: Window) => void) => void }>()
let nextId = 0
udp.on('message', msg => {
  const q = queries.get(msg.readUInt16BE(0))
  if (q === undefined) return
  queries.delete(msg.readUInt16BE(0))
  if (performance.now() - q.sentAt > DNS_TIMEOUT_MS) { q.settle(() => {}); return }
  let right = false
  try {
    right = dnsPacket.decode(msg).answers?.some(a => a.type === 'A' && a.data === host) ?? false
  } catch {}
  q.settle(w => { if (right) w.dns.answered++; else w.dns.wrong++ })
})

function sendQuery (): void {
  const id = nextId
  nextId = (nextId + 1) & 0xffff
  // An ID still waiting after 65,536 queries has timed out anyway.
  queries.get(id)?.settle(() => {})
  queries.delete(id)
  const packet = Buffer.from(query)
  packet.writeUInt16BE(id, 0)
  queries.set(id, { sentAt: performance.now(), ...begin(w => { w.dns.sent++ }) })
  udp.send(packet, dnsPort, dnsHost)
}

function sweepQueries (now: number): void {
  for (const [id, q] of queries) {
    if (now - q.sentAt <= DNS_TIMEOUT_MS) break
    queries.delete(id)
    q.settle(() => {})
  }
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

udp.bind(0)
await new Promise(resolve => udp.once('listening', resolve))
udp.setRecvBufferSize(4 * 1024 * 1024)
udp.setSendBufferSize(4 * 1024 * 1024)

const long = Array.from({ length: LONG }, () => new LongLived())
for (const c of long) { c.open(); await sleep(10) }
const openBy = performance.now() + 30_000
while (long.some(c => !c.up)) {
  if (performance.now() > openBy) {
    console.log(JSON.stringify({ error: 'long-lived connections did not open', open: long.filter(c => c.up).length }))
    process.exit(1)
  }
  await sleep(50)
}
t0 = performance.now()
console.log(JSON.stringify({ ready: LONG, at: Date.now() }))
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
loopDelay.enable()
let loopWindow = 0

// Each long-lived connection echoes once a second, spread over the second.
const ticks: NodeJS.Timeout[] = []
long.forEach((c, i) => setTimeout(() => { if (!stopping) { c.tick(); ticks.push(setInterval(() => c.tick(), 1000)) } }, (i * 1000) / LONG))

// Paced in 10 ms steps so the rates are smooth; a stalled loop catches up by at most 100 ms of load, not in one burst.
let phase: Phase | undefined
let last = performance.now()
let dnsDue = 0
let connDue = 0
const pace = setInterval(() => {
  const now = performance.now()
  const t = elapsed()
  if (t >= END) return
  const p = phaseAt(t)
  if (p !== phase) {
    phase = p
    console.log(JSON.stringify({ phase: p, t: Math.round(t * 1000) / 1000, at: Date.now() }))
  }
  const factor = p === 'overload' ? FACTOR : 1
  const dt = (now - last) / 1000
  last = now
  dnsDue = Math.min(dnsDue + DNS_RATE * factor * dt, DNS_RATE * factor * 0.1)
  connDue = Math.min(connDue + CONN_RATE * factor * dt, CONN_RATE * factor * 0.1)
  for (; dnsDue >= 1; dnsDue--) sendQuery()
  for (; connDue >= 1; connDue--) newConnection()
}, 10)

const housekeeping = setInterval(() => {
  const now = performance.now()
  if (elapsed() >= END && !stopping) {
    stopping = true
    clearInterval(pace)
    for (const t of ticks) clearInterval(t)
  }
  if (Math.floor(elapsed() / 10) !== loopWindow) {
    windowOf(10, loopWindow).loop = { p99: Math.round(loopDelay.percentile(99) / 1e5) / 10, max: Math.round(loopDelay.max / 1e5) / 10 }
    loopDelay.reset()
    loopWindow = Math.floor(elapsed() / 10)
  }
  sweepQueries(now)
  for (const c of long) c.sweep(now)
  if (printSettled()) {
    clearInterval(housekeeping)
    for (const c of long) c.close()
    udp.close()
    console.log(JSON.stringify({ done: true, at: Date.now() }))
  }
}, 100)
