/**
 * The choice of how a proxied connection reaches an endpoint: directly from
 * this node, or through the agent on the endpoint's node over one of the peer
 * transports, in order, with one time budget for all of them.
 */
import type { Duplex } from 'node:stream'
import type { Logger } from '../observability/logger.ts'
import type { DatagramChannel, DialOptions, DialTarget, EndpointDialer, PeerTarget, PeerTransport } from './endpoint-dialer.ts'
import { EndpointRefusedError, PeerUnreachableError } from './errors.ts'

export interface PeerDialerInit {
  /** One budget for a dial, every transport it tries included. @default 10000 */
  dialTimeoutMs?: number
}

/**
 * Tries each transport in order: the first that has a way to the peer carries
 * the connection. A transport that fails hands over to the next (the data
 * path falls back to libp2p); a refusal by the far agent ends the dial, since
 * every transport ends at that same agent.
 */
export class PeerDialer implements EndpointDialer {
  readonly #log: Logger
  readonly #transports: readonly PeerTransport[]
  readonly #timeoutMs: number

  constructor (deps: { logger: Logger, transports: readonly PeerTransport[] }, init: PeerDialerInit = {}) {
    this.#log = deps.logger
    this.#transports = deps.transports
    this.#timeoutMs = init.dialTimeoutMs ?? 10_000
  }

  async dialTcp (target: DialTarget, signal?: AbortSignal, options?: DialOptions): Promise<Duplex> {
    return await this.#first(target, signal, async (t, peer, abort) => await t.dialTcp(peer, abort, options))
  }

  async dialUdp (target: DialTarget, signal?: AbortSignal): Promise<DatagramChannel> {
    return await this.#first(target, signal, async (t, peer, abort) => await t.dialUdp?.(peer, abort))
  }

  async #first<T> (target: DialTarget, signal: AbortSignal | undefined, dial: (t: PeerTransport, peer: PeerTarget, abort: AbortSignal) => Promise<T | undefined>): Promise<T> {
    const nodeName = target.nodeName ?? ''
    if (nodeName === '') throw new PeerUnreachableError('', 'the endpoint has no node name')
    // A timer cleared when the dial ends, not AbortSignal.timeout: that one fires for every dial,
    // long after it succeeded, and builds a DOMException with a stack trace each time.
    const timeout = new AbortController()
    const timer = setTimeout(() => { timeout.abort() }, this.#timeoutMs)
    const abort = signal === undefined ? timeout.signal : AbortSignal.any([signal, timeout.signal])
    const peer = { ...target, nodeName }
    const errors: Error[] = []
    try {
      for (const t of this.#transports) {
        try {
          const conn = await dial(t, peer, abort)
          if (conn !== undefined) return conn
        } catch (err) {
          if (err instanceof EndpointRefusedError || abort.aborted) throw err
          errors.push(err as Error)
          this.#log.debug('peer transport failed; trying the next', { transport: t.name, node: nodeName, err: (err as Error).message })
        }
      }
    } finally {
      clearTimeout(timer)
    }
    const only = errors.length === 1 ? errors[0] : undefined
    if (only !== undefined) throw only
    throw new PeerUnreachableError(nodeName, errors.length === 0 ? 'no transport has a way to it' : errors.map(e => e.message).join('; '))
  }
}

/**
 * Sends each connection the way its endpoint needs: direct for endpoints on
 * this node (or of unknown node), through the peers for endpoints on other
 * nodes. Without peers (no tunnel) every endpoint is dialed directly.
 */
export class RoutingDialer implements EndpointDialer {
  readonly #nodeName: string
  readonly #direct: EndpointDialer
  readonly #peers: EndpointDialer | undefined

  constructor (init: { nodeName: string, direct: EndpointDialer, peers?: EndpointDialer | undefined }) {
    this.#nodeName = init.nodeName
    this.#direct = init.direct
    this.#peers = init.peers
  }

  /** True when connections to an endpoint on `nodeName` do not go through a peer. */
  isDirect (nodeName: string | undefined): boolean {
    return this.#peers === undefined || nodeName === undefined || nodeName === '' || nodeName === this.#nodeName
  }

  async dialTcp (target: DialTarget, signal?: AbortSignal, options?: DialOptions): Promise<Duplex> {
    return await (this.isDirect(target.nodeName) ? this.#direct : this.#peers as EndpointDialer).dialTcp(target, signal, options)
  }

  async dialUdp (target: DialTarget, signal?: AbortSignal): Promise<DatagramChannel> {
    return await (this.isDirect(target.nodeName) ? this.#direct : this.#peers as EndpointDialer).dialUdp(target, signal)
  }
}
