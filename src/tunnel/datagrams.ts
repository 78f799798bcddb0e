/**
 * UDP over a tunnel stream. Between our agents each datagram is framed
 * (uvarint length, then the payload) so boundaries survive Yamux coalescing;
 * that mode is negotiated as protocol `udp/framed`, which a Go peer refuses,
 * and then the plain `udp` of upstream is used (one stream chunk = one
 * datagram, boundaries not guaranteed).
 */
import { createSocket } from 'node:dgram'
import type { Socket } from 'node:dgram'
import type { Stream } from '@libp2p/interface'
import type { DatagramChannel } from '../mesh/endpoint-dialer.ts'

export const UDP_FRAMED = 'udp/framed'
/** Larger than any UDP payload; a bigger frame means a broken peer. */
const MAX_DATAGRAM = 65_535

function frame (payload: Uint8Array): Buffer {
  const len: number[] = []
  let v = payload.length
  while (v >= 0x80) { len.push((v & 0x7f) | 0x80); v >>>= 7 }
  len.push(v)
  return Buffer.concat([Buffer.from(len), payload])
}

/** Splits a byte stream into frames; keeps a partial frame for the next chunk. */
export class FrameReader {
  #buf = Buffer.alloc(0)

  push (chunk: Uint8Array, emit: (datagram: Buffer) => void): void {
    this.#buf = this.#buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk])
    for (;;) {
      let len = 0
      let shift = 0
      let at = 0
      for (;;) {
        if (at >= this.#buf.length) return
        const b = this.#buf[at++] as number
        len += (b & 0x7f) * 2 ** shift
        shift += 7
        if ((b & 0x80) === 0) break
        if (shift > 21) throw new Error('bad datagram frame')
      }
      if (len > MAX_DATAGRAM) throw new Error(`datagram frame of ${len} bytes`)
      if (this.#buf.length < at + len) return
      emit(this.#buf.subarray(at, at + len))
      this.#buf = this.#buf.subarray(at + len)
    }
  }
}

function messageBytes (e: { data: Uint8Array | { subarray: () => Uint8Array } }): Uint8Array {
  return e.data instanceof Uint8Array ? e.data : e.data.subarray()
}

/** The initiator's side: a DatagramChannel over a stream that already got SUCCESS. */
export function streamChannel (stream: Stream, framed: boolean, initial: Uint8Array): DatagramChannel {
  const listeners: Array<(p: Buffer) => void> = []
  const closeListeners: Array<(err?: Error) => void> = []
  const reader = new FrameReader()
  let closed = false
  const deliver = (bytes: Uint8Array): void => {
    if (framed) reader.push(bytes, d => { for (const l of listeners) l(d) })
    else for (const l of listeners) l(Buffer.from(bytes))
  }
  const close = (err?: Error): void => {
    if (closed) return
    closed = true
    if (stream.status === 'open') stream.abort(err ?? new Error('UDP session closed'))
    for (const l of closeListeners) l(err)
  }
  stream.addEventListener('message', e => {
    try { deliver(messageBytes(e as never)) } catch (err) { close(err as Error) }
  })
  stream.addEventListener('close', e => close(e.error))
  stream.resume()
  if (initial.length > 0) queueMicrotask(() => deliver(initial))
  return {
    // A full stream drops the datagram, as a full socket buffer would.
    send: payload => { if (!closed && !stream.writableNeedsDrain) stream.send(framed ? frame(payload) : payload) },
    onMessage: l => { listeners.push(l) },
    onClose: l => { closeListeners.push(l) },
    close: () => close()
  }
}

/** The responder's side: relays datagrams between the stream and a UDP socket connected to the target. */
export async function serveDatagrams (stream: Stream, target: { ip: string, port: number }, framed: boolean, initial: Uint8Array, idleMs = 60_000): Promise<Socket> {
  const socket = createSocket(target.ip.includes(':') ? 'udp6' : 'udp4')
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.connect(target.port, target.ip, () => { socket.off('error', reject); resolve() })
  })
  const reader = new FrameReader()
  let timer: NodeJS.Timeout | undefined
  const end = (): void => {
    clearTimeout(timer)
    try { socket.close() } catch {}
    if (stream.status === 'open') stream.close().catch(() => {})
  }
  const touch = (): void => { clearTimeout(timer); timer = setTimeout(end, idleMs); timer.unref() }
  const toTarget = (bytes: Uint8Array): void => {
    touch()
    if (framed) reader.push(bytes, d => socket.send(d))
    else socket.send(bytes)
  }
  socket.on('message', msg => {
    touch()
    if (stream.status === 'open' && !stream.writableNeedsDrain) stream.send(framed ? frame(msg) : msg)
  })
  // ICMP port unreachable on a connected socket: the target is gone; later datagrams may still work.
  socket.on('error', () => {})
  stream.addEventListener('message', e => {
    try { toTarget(messageBytes(e as never)) } catch { end() }
  })
  stream.addEventListener('close', end)
  stream.addEventListener('remoteCloseWrite', end)
  stream.resume()
  if (initial.length > 0) toTarget(initial)
  touch()
  return socket
}
