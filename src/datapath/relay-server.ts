/**
 * The relay side of the data path: nodes park idle connections here (`park`),
 * and a peer that cannot reach a node directly asks to be joined to one of
 * them (`join`); the two sockets are then spliced byte for byte, the TLS
 * handshake running end to end through the splice. A node may also ask where
 * its connection came from (`reflect`: its public TCP endpoint, for TCP
 * punching). Every request carries a MAC over this relay's nonce keyed by the
 * PSK. Limits keep one busy node from taking the relay's capacity from the
 * others.
 */
import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import { refuse } from '../net/refuse.ts'
import { splice } from '../net/splice.ts'
import { readLine } from '../net/socket-io.ts'
import { CONTROL_TIMEOUT_MS, macMatches, parseRelayRequest, RELAY_HELLO } from './wire.ts'
import type { DataPathKeys } from './wire.ts'
import type { DataPathMetrics } from './metrics.ts'

/** Nodes parked, parked connections per node, concurrent splices per joining node. */
export interface RelayLimits { maxNodes?: number, maxParkedPerNode?: number, maxSplicesPerNode?: number }

/** How long a node that parked here counts as present when it has nothing parked right now. */
const RECENTLY_PARKED_MS = 60_000
/** How long a join waits for such a node to park again. */
const JOIN_WAIT_MS = 2000

/** Clients send RELAY_HELLO: the magic byte is read first, the other seven lead the request line. */
const HELLO_REST = RELAY_HELLO.subarray(1).toString('latin1')

export class RelayServer {
  readonly #deps: { metrics: DataPathMetrics, copied?: CopiedStreams | undefined, keys: () => DataPathKeys }
  readonly #limits: RelayLimits
  // Parked connections by node, and live splices by node.
  readonly #parkedHere = new Map<string, Set<Socket>>()
  readonly #splicesByNode = new Map<string, number>()
  /** Joins waiting for a node to park its next connection, and when each node last parked. */
  readonly #joinWaiters = new Map<string, Array<(s: Socket) => boolean>>()
  readonly #lastParkedAt = new Map<string, number>()

  constructor (deps: { metrics: DataPathMetrics, copied?: CopiedStreams | undefined, keys: () => DataPathKeys }, limits: RelayLimits = {}) {
    this.#deps = deps
    this.#limits = limits
  }

  /**
   * One of `target`'s parked connections, told to go: for a join, or for this
   * relay's own connection to that node. When it parked lately but has none
   * left, waits a moment for the next; undefined when there is none, or when
   * `gone()` says the one waiting left.
   */
  async take (target: string, gone: () => boolean): Promise<Socket | undefined> {
    const parked = this.#parkedHere.get(target)
    let peer = parked?.values().next().value
    if (parked !== undefined && peer !== undefined) {
      parked.delete(peer)
      this.#deps.metrics.relayParked.dec()
    } else if (Date.now() - (this.#lastParkedAt.get(target) ?? 0) < RECENTLY_PARKED_MS) {
      // A burst used up what the node had parked: it parks again within a round trip.
      peer = await this.#awaitParked(target, gone)
    }
    peer?.write('go\n')
    return peer
  }

  /** Waits for `target` to park a connection; undefined after JOIN_WAIT_MS or once `gone()`. */
  async #awaitParked (target: string, gone: () => boolean): Promise<Socket | undefined> {
    return await new Promise(resolve => {
      let list = this.#joinWaiters.get(target)
      if (list === undefined) { list = []; this.#joinWaiters.set(target, list) }
      const waiters = list
      const forget = (): void => {
        clearTimeout(timer)
        const at = waiters.indexOf(take)
        if (at >= 0) waiters.splice(at, 1)
        if (waiters.length === 0 && this.#joinWaiters.get(target) === waiters) this.#joinWaiters.delete(target)
      }
      const take = (s: Socket): boolean => {
        forget()
        if (gone()) { resolve(undefined); return false }
        resolve(s)
        return true
      }
      const timer = setTimeout(() => { forget(); resolve(undefined) }, JOIN_WAIT_MS)
      waiters.push(take)
    })
  }

  /** Serves one relay request on a socket whose first byte is RELAY_MAGIC; `authenticated` once its MAC checked out. */
  async serve (socket: Socket, authenticated: () => void): Promise<void> {
    socket.read(1)
    const nonce = randomBytes(16)
    socket.write(`${nonce.toString('hex')}\n`)
    const line = await readLine(socket, CONTROL_TIMEOUT_MS)
    const request = parseRelayRequest(line.startsWith(HELLO_REST) ? line.slice(HELLO_REST.length) : line)
    if (request === undefined || !macMatches(request.mac, this.#deps.keys().relayMac(nonce, request))) {
      refuse(socket, 'err not authorized (another PSK?)\n')
      return
    }
    const { op, node, target } = request
    authenticated()
    const limits = this.#limits
    if (op === 'reflect') {
      socket.end(`seen ${(socket.remoteAddress ?? '').replace(/^::ffff:/, '')}:${socket.remotePort ?? 0}\n`)
      return
    }
    if (op === 'park') {
      let set = this.#parkedHere.get(node)
      if (set === undefined) {
        if (this.#parkedHere.size >= (limits.maxNodes ?? 10_000)) { refuse(socket, 'err relay full\n'); return }
        set = new Set()
        this.#parkedHere.set(node, set)
      }
      if (set.size >= (limits.maxParkedPerNode ?? 8)) { refuse(socket, 'err too many parked connections\n'); return }
      this.#lastParkedAt.set(node, Date.now())
      if (this.#lastParkedAt.size > (limits.maxNodes ?? 10_000)) {
        for (const [n, at] of this.#lastParkedAt) if (Date.now() - at > RECENTLY_PARKED_MS) this.#lastParkedAt.delete(n)
      }
      socket.write('ok\n')
      // A join already waiting for this node takes the connection at once.
      for (let w = this.#joinWaiters.get(node)?.shift(); w !== undefined; w = this.#joinWaiters.get(node)?.shift()) {
        if (w(socket)) return
      }
      set.add(socket)
      this.#deps.metrics.relayParked.inc()
      // A parked connection the node ended (it stopped or restarted) is gone: half-open, it would
      // otherwise stay parked and the next join would be spliced to nobody.
      socket.once('end', () => { if (set.has(socket)) socket.destroy() })
      socket.once('close', () => {
        if (set.delete(socket)) this.#deps.metrics.relayParked.dec()
        if (set.size === 0 && this.#parkedHere.get(node) === set) this.#parkedHere.delete(node)
      })
      return
    }
    if (typeof target !== 'string') { refuse(socket, 'err no target\n'); return }
    const busy = this.#splicesByNode.get(node) ?? 0
    if (busy >= (limits.maxSplicesPerNode ?? 256)) { refuse(socket, `err ${node} has too many relayed connections\n`); return }
    const peer = await this.take(target, () => socket.destroyed)
    if (peer === undefined) { refuse(socket, `err ${target} holds no reservation on this relay\n`); return }
    socket.write('ok\n')
    this.#splicesByNode.set(node, busy + 1)
    this.#deps.metrics.splices.inc()
    this.#deps.metrics.joins.inc()
    let counted = true
    const release = (): void => {
      if (!counted) return
      counted = false
      this.#deps.metrics.splices.dec()
      const n = (this.#splicesByNode.get(node) ?? 1) - 1
      if (n <= 0) this.#splicesByNode.delete(node)
      else this.#splicesByNode.set(node, n)
    }
    socket.once('close', release)
    peer.once('close', release)
    splice(socket, peer, { copied: this.#deps.copied })
    socket.resume()
    peer.resume()
  }
}
