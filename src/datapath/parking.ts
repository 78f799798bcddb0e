/**
 * A node's side of the relays (not on relays themselves): it keeps a few idle
 * TCP connections parked on every relay's data path, so that peers that
 * cannot reach it directly can join one through the relay. A parked
 * connection the relay says `go` on is handed over (a peer's TLS handshake,
 * or a resumed session, follows), and another is parked in its place; more,
 * up to BURST_PARKED, while joins use them up within a second.
 */
import type { Socket } from 'node:net'
import type { Logger } from '../observability/logger.ts'
import type { DataPathMetrics } from './metrics.ts'
import { connectWithin } from '../net/connect.ts'
import { parseIpv4Endpoint } from '../net/ipv4.ts'
import { readLine, untilAborted } from '../net/socket-io.ts'
import type { HostPort } from './types.ts'
import { CONTROL_TIMEOUT_MS, jsonLine, RELAY_HELLO, type DataPathKeys } from './wire.ts'

const net = process.getBuiltinModule('node:net')

const PARK_RETRY_MS = 1000
/** Parked connections per relay while joins arrive in a burst (the relay's default cap per node). */
const BURST_PARKED = 8

export interface ParkingDeps {
  logger: Logger
  metrics: DataPathMetrics
  /** Sends a MACed relay request (`park`, `reflect`) on a new connection and returns the relay's answer line. */
  request: (raw: Socket, request: { op: 'park' | 'reflect', node: string }) => Promise<string>
  /** A parked connection a peer joined: it is the data path's from here on. */
  handOver: (socket: Socket) => void
}

/** Sends a MACed relay request on `raw` (the hello, the relay's nonce, the request line) and returns the relay's answer line. */
export async function relayRequest (raw: Socket, keys: Pick<DataPathKeys, 'relayMac'>, request: { op: 'join' | 'park' | 'reflect', node: string, target?: string }): Promise<string> {
  raw.write(RELAY_HELLO)
  const nonce = Buffer.from(await readLine(raw, CONTROL_TIMEOUT_MS), 'hex')
  raw.write(jsonLine({ ...request, mac: keys.relayMac(nonce, request) }))
  return await readLine(raw, CONTROL_TIMEOUT_MS)
}

export class Parking {
  readonly #deps: ParkingDeps
  readonly #nodeName: string
  readonly #perRelay: number
  #relays: Array<{ nodeName: string, address: HostPort }> = []
  readonly #parked = new Map<string, Set<Socket>>()
  /** Per relay, parked connections joins used in the current one-second window. */
  readonly #joinsSeen = new Map<string, { since: number, count: number }>()
  #timer: NodeJS.Timeout | undefined

  constructor (deps: ParkingDeps, init: { nodeName: string, parkedPerRelay?: number }) {
    this.#deps = deps
    this.#nodeName = init.nodeName
    this.#perRelay = init.parkedPerRelay ?? 2
  }

  start (): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => { this.#keepParked() }, PARK_RETRY_MS)
    this.#timer.unref()
    this.#keepParked()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    // The relays would keep them until their next write failed.
    for (const set of this.#parked.values()) for (const s of set) s.destroy()
    this.#parked.clear()
  }

  /** Relays to park on (their data path addresses); parking follows within a second. */
  setRelays (relays: Array<{ nodeName: string, address: HostPort }>): void {
    this.#relays = relays.filter(r => r.nodeName !== this.#nodeName)
    const keep = new Set(this.#relays.map(r => relayKey(r)))
    for (const [key, set] of this.#parked) {
      if (!keep.has(key)) { for (const s of set) s.destroy(); this.#parked.delete(key) }
    }
    this.#keepParked()
  }

  /**
   * Where the relays (two at most) see a connection from local TCP port
   * `localPort` come from: the node's public TCP endpoint for that port, which
   * TCP punching gives the peer. Relays that do not answer are left out.
   */
  async reflect (localPort: number, timeoutMs: number, signal?: AbortSignal): Promise<Array<{ relay: string, host: string, port: number }>> {
    const seen = await Promise.all(this.#relays.slice(0, 2).map(async r => {
      const raw = await connectWithin({ host: r.address.host, port: r.address.port, localPort, noDelay: true }, timeoutMs, signal).catch(() => undefined)
      if (raw === undefined) return []
      try {
        const answer = await untilAborted(raw, signal, async () => await this.#deps.request(raw, { op: 'reflect', node: this.#nodeName }))
        const seen = answer.startsWith('seen ') ? parseIpv4Endpoint(answer.slice(5)) : undefined
        return seen === undefined ? [] : [{ relay: r.nodeName, ...seen }]
      } catch {
        return []
      } finally {
        raw.destroy()
      }
    }))
    return seen.flat()
  }

  /** Connections parked now, per relay node name. */
  parkedOn (): Record<string, number> {
    const out: Record<string, number> = {}
    for (const r of this.#relays) out[r.nodeName] = this.#parked.get(relayKey(r))?.size ?? 0
    return out
  }

  #keepParked (): void {
    if (this.#timer === undefined) return
    for (const r of this.#relays) {
      const key = relayKey(r)
      let set = this.#parked.get(key)
      if (set === undefined) { set = new Set(); this.#parked.set(key, set) }
      // Joins used `recent` parked connections in the last second: park that many more (up to
      // BURST_PARKED), so a burst does not wait a round trip per connection for the next one.
      const used = this.#joinsSeen.get(key)
      const recent = used !== undefined && Date.now() - used.since < 1000 ? used.count : 0
      const want = Math.min(Math.max(this.#perRelay, BURST_PARKED), this.#perRelay + recent)
      for (let i = set.size; i < want; i++) this.#park(r, set)
    }
    this.#deps.metrics.parked.set([...this.#parked.values()].reduce((n, s) => n + s.size, 0))
  }

  #noteJoin (key: string): void {
    const used = this.#joinsSeen.get(key)
    if (used === undefined || Date.now() - used.since >= 1000) this.#joinsSeen.set(key, { since: Date.now(), count: 1 })
    else used.count++
  }

  #park (relay: { nodeName: string, address: HostPort }, set: Set<Socket>): void {
    const placeholder = net.connect({ host: relay.address.host, port: relay.address.port, noDelay: true, allowHalfOpen: true, keepAlive: true, keepAliveInitialDelay: 15_000 })
    set.add(placeholder)
    const drop = (): void => { set.delete(placeholder) }
    placeholder.on('error', (err) => { drop(); this.#deps.logger.debug('parking on a relay failed', { relay: relay.nodeName, err }) })
    placeholder.once('close', drop)
    placeholder.once('connect', () => {
      this.#deps.request(placeholder, { op: 'park', node: this.#nodeName }).then(async answer => {
        if (answer !== 'ok') throw new Error(answer.replace(/^err /, ''))
        // Parked: the relay says `go` when a peer joins.
        const go = await readLine(placeholder, 0)
        if (go !== 'go') throw new Error(`relay sent ${JSON.stringify(go)}`)
        placeholder.off('close', drop)
        drop()
        this.#noteJoin(relayKey(relay))
        this.#keepParked()
        this.#deps.handOver(placeholder)
      }).catch((err: Error) => {
        if (this.#timer !== undefined) this.#deps.logger.debug('parked connection ended', { relay: relay.nodeName, err: err.message })
        placeholder.destroy()
      })
    })
  }
}

function relayKey (r: { nodeName: string, address: HostPort }): string {
  return `${r.nodeName}@${r.address.host}:${r.address.port}`
}
