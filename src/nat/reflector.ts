/**
 * The relay's STUN reflector on UDP `listenPort` (20006, beside the tunnel's
 * TCP): it tells each asker the address and port it was seen from, from the
 * tunnel port or, when asked to change port, from a second socket, which
 * tells port-dependent filtering apart. Reachable by anyone: requests shorter
 * than the answer are ignored (no amplification), and every source address
 * and the whole reflector have a rate cap.
 */
import dgram from 'node:dgram'
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import { decodeRequest, encodeResponse, MAX_REQUEST_BYTES, MIN_REQUEST_BYTES } from './stun.ts'
import type { NatMetrics } from './metrics.ts'

export interface ReflectorInit {
  host: string
  port: number
  /** Answers per source address and second. @default 20 */
  perSourcePerSecond?: number
  /** Answers per second in all. @default 2000 */
  totalPerSecond?: number
}

/** Sources counted per second; past this many, new sources wait for the next second. */
const MAX_SOURCES = 10_000

export class StunReflector implements Component {
  readonly name = 'nat-reflector'
  readonly #log: Logger
  readonly #init: Required<ReflectorInit>
  readonly #metrics: NatMetrics
  #main: dgram.Socket | undefined
  #alt: dgram.Socket | undefined
  #window = 0
  #total = 0
  #perSource = new Map<string, number>()

  constructor (deps: { logger: Logger, metrics: NatMetrics }, init: ReflectorInit) {
    this.#log = deps.logger
    this.#init = { perSourcePerSecond: 20, totalPerSecond: 2000, ...init }
    this.#metrics = deps.metrics
  }

  async start (): Promise<void> {
    if (this.#main !== undefined) return
    const main = dgram.createSocket('udp4')
    const alt = dgram.createSocket('udp4')
    try {
      await bind(main, this.#init.port, this.#init.host)
      await bind(alt, 0, this.#init.host)
    } catch (err) {
      main.close()
      alt.close()
      // The relay's tunnel does not depend on it: nodes then report their NAT as unknown (udp-blocked).
      this.#log.warn('nat reflector not listening; nodes cannot learn their NAT from this relay', { address: `${this.#init.host}:${this.#init.port}/udp`, err })
      return
    }
    main.on('message', (msg, rinfo) => { this.#answer(msg, rinfo) })
    for (const s of [main, alt]) s.on('error', err => this.#log.debug('nat reflector socket error', { err }))
    // Answers from `alt` only: what arrives there is not ours to reflect.
    alt.on('message', () => {})
    this.#main = main
    this.#alt = alt
    this.#log.info('nat reflector listening', { address: `${this.#init.host}:${this.#init.port}/udp`, altPort: alt.address().port })
  }

  async stop (): Promise<void> {
    for (const s of [this.#main, this.#alt]) s?.close()
    this.#main = undefined
    this.#alt = undefined
  }

  /** Whether it answers (its UDP port could be bound). */
  listening (): boolean {
    return this.#main !== undefined
  }

  #answer (msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < MIN_REQUEST_BYTES || msg.length > MAX_REQUEST_BYTES) { this.#metrics.reflected.inc({ result: 'size' }); return }
    const req = decodeRequest(msg)
    if (req === undefined) { this.#metrics.reflected.inc({ result: 'malformed' }); return }
    if (!this.#admit(rinfo.address)) { this.#metrics.reflected.inc({ result: 'rate' }); return }
    const reply = encodeResponse(req.transactionId, { address: rinfo.address, port: rinfo.port })
    ;(req.changePort ? this.#alt : this.#main)?.send(reply, rinfo.port, rinfo.address)
    this.#metrics.reflected.inc({ result: 'answered' })
  }

  /** Fixed one-second windows: cheap, bounded, and enough to keep the reflector from being anyone's flood source. */
  #admit (source: string): boolean {
    const now = Math.floor(performance.now() / 1000)
    if (now !== this.#window) {
      this.#window = now
      this.#total = 0
      this.#perSource = new Map()
    }
    if (this.#total >= this.#init.totalPerSecond) return false
    const n = this.#perSource.get(source) ?? 0
    if (n >= this.#init.perSourcePerSecond || (n === 0 && this.#perSource.size >= MAX_SOURCES)) return false
    this.#perSource.set(source, n + 1)
    this.#total++
    return true
  }
}

async function bind (socket: dgram.Socket, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(port, host, () => { socket.off('error', reject); resolve() })
  })
}
