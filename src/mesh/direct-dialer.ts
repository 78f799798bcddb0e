import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { createSocket } from 'node:dgram'
import type { Duplex } from 'node:stream'
import type { DatagramChannel, DialTarget, EndpointDialer } from './dialer.ts'

export interface DirectDialerInit {
  /** Give up on a TCP connect after this long. @default 5000 */
  connectTimeoutMs?: number
}

/** Connects from this node's network namespace: for endpoints on this node or routable from it. */
export class DirectDialer implements EndpointDialer {
  readonly #timeoutMs: number

  constructor (init: DirectDialerInit = {}) {
    this.#timeoutMs = init.connectTimeoutMs ?? 5000
  }

  async dialTcp (target: DialTarget, signal?: AbortSignal): Promise<Duplex> {
    return await new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: target.ip, port: target.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000, allowHalfOpen: true })
      const fail = (err: Error): void => { cleanup(); socket.destroy(); reject(err) }
      const onAbort = (): void => fail(signal?.reason instanceof Error ? signal.reason : new Error('dial aborted'))
      const timer = setTimeout(() => fail(Object.assign(new Error(`connect ${target.ip}:${target.port} timed out after ${this.#timeoutMs} ms`), { code: 'ETIMEDOUT' })), this.#timeoutMs)
      const cleanup = (): void => { clearTimeout(timer); socket.off('error', fail); signal?.removeEventListener('abort', onAbort) }
      socket.once('error', fail)
      socket.once('connect', () => { cleanup(); resolve(socket) })
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  async dialUdp (target: DialTarget): Promise<DatagramChannel> {
    const socket = createSocket(target.ip.includes(':') ? 'udp6' : 'udp4')
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.connect(target.port, target.ip, () => { socket.off('error', reject); resolve() })
    })
    let closed = false
    const closeListeners: Array<(err?: Error) => void> = []
    const close = (err?: Error): void => {
      if (closed) return
      closed = true
      socket.close()
      for (const l of closeListeners) l(err)
    }
    // ICMP port unreachable surfaces as ECONNREFUSED on a connected socket: the endpoint is gone, not the client.
    socket.on('error', err => close(err))
    return {
      send: payload => { if (!closed) socket.send(payload) },
      onMessage: listener => { socket.on('message', listener) },
      onClose: listener => { closeListeners.push(listener) },
      close: () => close()
    }
  }
}

/**
 * Sends each connection the way its endpoint needs: direct for endpoints on
 * this node (or of unknown node), through the tunnel for endpoints on other
 * nodes. Without a tunnel every endpoint is dialed directly.
 */
export class RoutingDialer implements EndpointDialer {
  readonly #nodeName: string
  readonly #direct: EndpointDialer
  readonly #tunnel: EndpointDialer | undefined

  constructor (init: { nodeName: string, direct: EndpointDialer, tunnel?: EndpointDialer | undefined }) {
    this.#nodeName = init.nodeName
    this.#direct = init.direct
    this.#tunnel = init.tunnel
  }

  /** True when connections to an endpoint on `nodeName` do not use the tunnel. */
  isDirect (nodeName: string | undefined): boolean {
    return this.#tunnel === undefined || nodeName === undefined || nodeName === '' || nodeName === this.#nodeName
  }

  async dialTcp (target: DialTarget, signal?: AbortSignal): Promise<Duplex> {
    return await (this.isDirect(target.nodeName) ? this.#direct : this.#tunnel as EndpointDialer).dialTcp(target, signal)
  }

  async dialUdp (target: DialTarget, signal?: AbortSignal): Promise<DatagramChannel> {
    return await (this.isDirect(target.nodeName) ? this.#direct : this.#tunnel as EndpointDialer).dialUdp(target, signal)
  }
}
