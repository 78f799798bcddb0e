/**
 * Upstream's `/libp2p/tunnel-proxy/1.0.0` as a peer transport: one stream
 * per proxied connection on the (direct or relayed) libp2p connection to the
 * endpoint's agent, a CONNECT message, SUCCESS or FAILED, then the bytes. The
 * only way to a Go EdgeMesh, and the fallback between our agents.
 */
import type { Duplex } from 'node:stream'
import type { Stream } from '@libp2p/interface'
import type { Logger } from '../observability/logger.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import { splice } from '../net/splice.ts'
import type { DatagramChannel, PeerTarget, PeerTransport } from '../mesh/endpoint-dialer.ts'
import { EndpointRefusedError } from '../mesh/errors.ts'
import { serveTarget } from '../mesh/serve-target.ts'
import { MessageType, PROXY_PROTOCOL, decodeProxyBody, encodeProxy, takeFrame } from './messages.ts'
import type { ProxyMessage } from './messages.ts'
import { UDP_FRAMED, serveDatagrams, streamChannel } from './datagrams.ts'
import { streamToDuplex } from './stream.ts'
import type { TunnelMetrics } from './metrics.ts'

/** What the protocol needs from the tunnel: a stream to a node's agent, and a note that a peer is alive. */
export interface StreamOpener {
  /** A new stream for `protocol` to the agent on `nodeName`; rejects with TunnelDialError. */
  open (nodeName: string, protocol: string, signal: AbortSignal): Promise<{ stream: Stream, peer: string }>
  /** Called as data arrives from a peer on a proxied stream. */
  heardFrom (peer: string): () => void
}

/** How long a peer may take to send its CONNECT message. */
const HANDSHAKE_TIMEOUT_MS = 10_000

/** Reads one framed handshake message from a stream, keeping whatever followed it. */
export async function readMessage (stream: Stream, signal: AbortSignal): Promise<{ message: ProxyMessage, rest: Buffer }> {
  return await new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    const done = (err?: Error, value?: { message: ProxyMessage, rest: Buffer }): void => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
      if (err !== undefined) reject(err)
      else resolve(value as { message: ProxyMessage, rest: Buffer })
    }
    const onMessage = (e: { data: Uint8Array | { subarray: () => Uint8Array } }): void => {
      const data = e.data instanceof Uint8Array ? e.data : e.data.subarray()
      buf = Buffer.concat([buf, data])
      try {
        const frame = takeFrame(buf)
        if (frame === undefined) return
        // Stop delivering until the caller attaches its own reader; later bytes stay buffered in the stream.
        stream.pause()
        done(undefined, { message: decodeProxyBody(frame.body), rest: Buffer.from(frame.rest) })
      } catch (err) {
        done(err as Error)
      }
    }
    const onClose = (): void => done(new Error('stream closed during the handshake'))
    const onAbort = (): void => done(signal.reason instanceof Error ? signal.reason : new Error('handshake aborted'))
    stream.addEventListener('message', onMessage as never)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

export class ProxyProtocol implements PeerTransport {
  readonly name = 'libp2p'
  readonly #log: Logger
  readonly #opener: StreamOpener
  readonly #metrics: () => TunnelMetrics | undefined
  readonly #copied: CopiedStreams | undefined

  constructor (deps: { logger: Logger, opener: StreamOpener, metrics: () => TunnelMetrics | undefined, copied?: CopiedStreams | undefined }) {
    this.#log = deps.logger
    this.#opener = deps.opener
    this.#metrics = deps.metrics
    this.#copied = deps.copied
  }

  async dialTcp (target: PeerTarget, signal: AbortSignal): Promise<Duplex> {
    const { stream, rest, peer } = await this.#open(target, 'tcp', signal)
    return streamToDuplex(stream, rest, this.#opener.heardFrom(peer))
  }

  async dialUdp (target: PeerTarget, signal: AbortSignal): Promise<DatagramChannel> {
    // Framed datagrams between our agents; upstream's plain `udp` for a Go peer, which refuses the framed mode.
    try {
      const { stream, rest } = await this.#open(target, UDP_FRAMED, signal)
      return streamChannel(stream, true, rest)
    } catch (err) {
      if (!(err instanceof EndpointRefusedError)) throw err
      const { stream, rest } = await this.#open(target, 'udp', signal)
      return streamChannel(stream, false, rest)
    }
  }

  /** A proxy stream that the agent on the target's node answered with SUCCESS. */
  async #open (target: PeerTarget, protocol: string, signal: AbortSignal): Promise<{ stream: Stream, rest: Buffer, peer: string }> {
    const metrics = this.#metrics()
    let opened: { stream: Stream, peer: string }
    try {
      opened = await this.#opener.open(target.nodeName, PROXY_PROTOCOL, signal)
    } catch (err) {
      metrics?.streams.inc({ direction: 'outbound', result: 'dial_failed' })
      throw err
    }
    const { stream, peer } = opened
    // No payload before SUCCESS: upstream's reader would drop it.
    stream.send(encodeProxy({ type: MessageType.CONNECT, protocol, nodeName: target.nodeName, ip: target.ip, port: target.port }))
    let answer: { message: ProxyMessage, rest: Buffer }
    try {
      answer = await readMessage(stream, signal)
    } catch (err) {
      metrics?.streams.inc({ direction: 'outbound', result: 'failed' })
      stream.abort(err as Error)
      throw err
    }
    if (answer.message.type === MessageType.FAILED) {
      metrics?.streams.inc({ direction: 'outbound', result: 'refused' })
      const err = new EndpointRefusedError(target.nodeName, `${target.ip}:${target.port}`, protocol)
      stream.abort(err)
      throw err
    }
    metrics?.streams.inc({ direction: 'outbound', result: 'ok' })
    return { stream, rest: answer.rest, peer }
  }

  /** The responder: dial the requested ip:port from this node, answer SUCCESS or FAILED, then splice. */
  async serve (stream: Stream, peer: string): Promise<void> {
    const metrics = this.#metrics()
    const { message, rest } = await readMessage(stream, AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS))
    if (message.type !== MessageType.CONNECT) { stream.abort(new Error('expected CONNECT')); return }
    const refuse = async (result: string): Promise<void> => {
      stream.send(encodeProxy({ type: MessageType.FAILED }))
      metrics?.streams.inc({ direction: 'inbound', result })
      await stream.close().catch((err: Error) => this.#log.debug('stream close failed', { err: err.message }))
    }
    if ((message.protocol === 'udp' || message.protocol === UDP_FRAMED) && message.ip !== undefined && message.port !== undefined) {
      try {
        await serveDatagrams(stream, { ip: message.ip, port: message.port }, message.protocol === UDP_FRAMED, Buffer.alloc(0))
      } catch (err) {
        this.#log.debug('proxy target unreachable', { target: `${message.ip}:${message.port}`, protocol: message.protocol, err })
        await refuse('target_unreachable')
        return
      }
      // SUCCESS goes out before any reply datagram: serveDatagrams only sends once the target answers.
      stream.send(encodeProxy({ ...message, type: MessageType.SUCCESS }))
      metrics?.streams.inc({ direction: 'inbound', result: 'ok' })
      if (rest.length > 0) stream.unshift(rest)
      return
    }
    if (message.protocol !== 'tcp' || message.ip === undefined || message.port === undefined) {
      await refuse('unsupported')
      return
    }
    const served = await serveTarget({ ip: message.ip, port: message.port })
    if ('refused' in served) {
      this.#log.debug('proxy target unreachable', { target: `${message.ip}:${message.port}`, err: served.refused })
      await refuse('target_unreachable')
      return
    }
    stream.send(encodeProxy({ ...message, type: MessageType.SUCCESS }))
    metrics?.streams.inc({ direction: 'inbound', result: 'ok' })
    splice(streamToDuplex(stream, rest, this.#opener.heardFrom(peer)), served.socket, { copied: this.#copied })
  }
}
