/**
 * UDX (`udx-native`, the Holepunch stack's reliable, congestion-controlled
 * streams over UDP) for punched paths: one UDP socket carries the NAT checks,
 * the punching probes and then the streams, so the mapping the relays saw is
 * the one the streams use. Loaded on first use: nodes that never punch do not
 * pay for the addon. Only the parts used here are typed.
 */
import { Duplex } from 'node:stream'

export interface UdxAddress { host: string, port: number }

export interface UdxSocket {
  bind (port?: number, host?: string): void
  address (): UdxAddress & { family: number }
  /** Sends now or drops (a full socket buffer): probes, which are sent again anyway. */
  trySend (bytes: Uint8Array, port: number, host: string): void
  /** Queues until sent: control datagrams that must not be lost to a burst. */
  send (bytes: Uint8Array, port: number, host: string): Promise<boolean>
  on (event: 'message', fn: (bytes: Buffer, from: UdxAddress) => void): UdxSocket
  on (event: 'error', fn: (err: Error) => void): UdxSocket
  off (event: 'message', fn: (bytes: Buffer, from: UdxAddress) => void): UdxSocket
  close (): Promise<void>
  readonly closing: boolean
  readonly streams: Set<UdxStream>
}

export interface UdxStream {
  readonly id: number
  readonly rtt: number
  connect (socket: UdxSocket, remoteId: number, port: number, host: string): void
  setKeepalive (ms: number): void
  write (chunk: Uint8Array): boolean
  end (): void
  destroy (err?: Error): void
  pause (): void
  resume (): void
  on (event: string, fn: (...args: any[]) => void): UdxStream
  once (event: string, fn: (...args: any[]) => void): UdxStream
  readonly destroyed: boolean
}

export interface Udx {
  createSocket (): UdxSocket
  createStream (id: number, opts?: { firewall?: (socket: UdxSocket, port: number, host: string) => boolean }): UdxStream
}

let loading: Promise<Udx> | undefined

/** One UDX instance per process; throws (once per call) when the addon does not load. */
export async function loadUdx (): Promise<Udx> {
  loading ??= (async () => {
    // A computed name keeps bundlers from inlining the addon: it loads its prebuilt binary from its own package folder.
    const name = ['udx', 'native'].join('-')
    const { default: UDX } = await import(name) as { default: new () => Udx }
    return new UDX()
  })()
  const pending = loading
  try {
    return await pending
  } catch (err) {
    if (loading === pending) loading = undefined
    throw err
  }
}

/**
 * A UDX stream as a Node stream, so TLS (`tls.connect({ socket })`) and
 * splicing take it like a socket: UDX streams are `streamx` streams, whose
 * backpressure and end-of-stream events Node's TLS does not follow.
 */
export function udxDuplex (stream: UdxStream, remote: UdxAddress): Duplex & { remoteAddress: string, remotePort: number } {
  let onDrain: (() => void) | undefined
  let ended = false
  let finished = false
  stream.on('drain', () => { const cb = onDrain; onDrain = undefined; cb?.() })
  const duplex = new Duplex({
    allowHalfOpen: true,
    write (chunk: Buffer, _enc, cb) {
      if (stream.write(chunk)) cb()
      else onDrain = () => cb()
    },
    final (cb) { finished = true; stream.end(); cb() },
    read () { stream.resume() },
    destroy (err, cb) {
      // Ended both ways: UDX closes the stream itself once its last bytes are acknowledged;
      // destroying it now would reset the peer before it read them.
      if (!stream.destroyed && (err !== null || !ended || !finished)) stream.destroy()
      cb(err)
    }
  }) as Duplex & { remoteAddress: string, remotePort: number }
  duplex.remoteAddress = remote.host
  duplex.remotePort = remote.port
  stream.on('data', (chunk: Buffer) => { if (!duplex.push(chunk)) stream.pause() })
  stream.on('end', () => { ended = true; duplex.push(null) })
  stream.on('error', (err: Error) => duplex.destroy(err))
  // A stream closed before both sides ended (reset, timeout) ends the duplex too; a normal close
  // follows both ends, and the duplex destroys itself once its last bytes are read.
  stream.on('close', () => { if (!ended || !duplex.writableFinished) duplex.destroy() })
  return duplex
}
