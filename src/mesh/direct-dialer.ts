import { createSocket } from 'node:dgram'
import type { Duplex } from 'node:stream'
import { connectWithin } from '../net/connect.ts'
import type { DatagramChannel, DialTarget, EndpointDialer } from './endpoint-dialer.ts'

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
    return await connectWithin({ host: target.ip, port: target.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000, allowHalfOpen: true }, this.#timeoutMs, signal)
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
