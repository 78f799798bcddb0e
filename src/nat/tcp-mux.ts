/**
 * Streams over one TCP connection, for a direct path punched by TCP
 * simultaneous open (tcp-punch.ts) where a site blocks UDP. Each data-path
 * connection is one stream, with the same TLS on top as over a UDX stream;
 * the mux itself only frames, so what it carries stays end-to-end encrypted.
 *
 * A frame is a u8 type, a u32 stream id and a u32 length, then the body:
 *
 *   open, end, reset:  no body
 *   data:              up to 64 KiB of the stream's bytes
 *   credit:            u32, bytes the receiver has consumed (flow control)
 *   ping, pong:        u32 nonce, on stream 0 (keepalive and RTT)
 *
 * A sender has at most WINDOW bytes per stream not yet credited, so one slow
 * reader cannot fill the connection for the others. The side that punched
 * (the initiator) numbers its streams odd, the other even. A broken frame
 * closes the connection: its streams end with an error, which the data
 * path's resumable streams take as a lost path.
 */
import { Duplex } from 'node:stream'
import type { Socket } from 'node:net'

const TYPE = { open: 1, data: 2, credit: 3, end: 4, reset: 5, ping: 6, pong: 7 } as const
const HEADER_BYTES = 9
const MAX_DATA = 64 * 1024
/** Bytes a stream may send ahead of the receiver's credit. */
export const STREAM_WINDOW = 256 * 1024

export interface TcpMuxInit {
  /** True on the side whose streams are odd (the one that punched). */
  initiator: boolean
  /** Streams at once; more opens from the peer are reset. @default 1024 */
  maxStreams?: number
  /** A stream the peer opened. */
  onStream: (stream: Duplex) => void
  /** The answer to a ping: its nonce. */
  onPong?: (nonce: number) => void
}

export class TcpMux {
  readonly #socket: Socket
  readonly #init: TcpMuxInit
  readonly #streams = new Map<number, MuxStream>()
  readonly #closeListeners: Array<(reason: string) => void> = []
  readonly #drainWaiters: Array<() => void> = []
  #nextId: number
  #rest: Buffer = Buffer.alloc(0)
  #closed = false
  /** When the peer last sent anything. */
  lastHeard = Date.now()

  constructor (socket: Socket, init: TcpMuxInit) {
    this.#socket = socket
    this.#init = init
    this.#nextId = init.initiator ? 1 : 2
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => { this.#receive(chunk) })
    socket.on('drain', () => { for (const w of this.#drainWaiters.splice(0)) w() })
    socket.on('error', () => {})
    socket.once('close', () => { this.close('the TCP connection closed') })
    socket.once('end', () => { this.close('the peer closed the TCP connection') })
  }

  get closed (): boolean { return this.#closed }
  get streams (): number { return this.#streams.size }

  onClose (fn: (reason: string) => void): void {
    this.#closeListeners.push(fn)
  }

  /** A new stream to the peer; its bytes may follow at once (the open frame goes first). */
  open (): Duplex {
    if (this.#closed) throw new Error('the TCP path is closed')
    const id = this.#nextId
    this.#nextId += 2
    if (this.#nextId > 0xffff_fff0) this.#nextId = this.#init.initiator ? 1 : 2
    const stream = new MuxStream(this, id, this.#socket)
    this.#streams.set(id, stream)
    this.send(TYPE.open, id)
    return stream
  }

  ping (nonce: number): void {
    this.send(TYPE.ping, 0, u32(nonce))
  }

  close (reason: string): void {
    if (this.#closed) return
    this.#closed = true
    for (const s of this.#streams.values()) s.destroy(new Error(`direct path lost: ${reason}`))
    this.#streams.clear()
    this.#socket.destroy()
    for (const w of this.#drainWaiters.splice(0)) w()
    for (const fn of this.#closeListeners) fn(reason)
  }

  /** Sends a frame; false when the socket's buffer is full (`whenDrained` then). */
  send (type: number, id: number, body?: Uint8Array): boolean {
    if (this.#closed) return true
    const header = Buffer.allocUnsafe(HEADER_BYTES)
    header[0] = type
    header.writeUInt32BE(id, 1)
    header.writeUInt32BE(body?.length ?? 0, 5)
    if (body === undefined || body.length === 0) return this.#socket.write(header)
    this.#socket.cork()
    this.#socket.write(header)
    const ok = this.#socket.write(body)
    this.#socket.uncork()
    return ok
  }

  /** Calls `fn` once the socket takes more: at once unless a write was refused ('drain' follows only those). */
  whenDrained (fn: () => void): void {
    if (this.#closed || !this.#socket.writableNeedDrain) fn()
    else this.#drainWaiters.push(fn)
  }

  forget (id: number): void {
    this.#streams.delete(id)
  }

  #receive (chunk: Buffer): void {
    this.lastHeard = Date.now()
    let buf = this.#rest.length === 0 ? chunk : Buffer.concat([this.#rest, chunk])
    while (buf.length >= HEADER_BYTES && !this.#closed) {
      const length = buf.readUInt32BE(5)
      if (length > MAX_DATA) { this.close(`a frame of ${length} bytes`); return }
      if (buf.length < HEADER_BYTES + length) break
      this.#frame(buf[0] as number, buf.readUInt32BE(1), buf.subarray(HEADER_BYTES, HEADER_BYTES + length))
      buf = buf.subarray(HEADER_BYTES + length)
    }
    // A copy, so a large chunk is not kept alive by its last few bytes.
    this.#rest = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf)
  }

  #frame (type: number, id: number, body: Buffer): void {
    if (id === 0) {
      if (body.length !== 4) return
      if (type === TYPE.ping) this.send(TYPE.pong, 0, body)
      else if (type === TYPE.pong) this.#init.onPong?.(body.readUInt32BE(0))
      return
    }
    const stream = this.#streams.get(id)
    if (type === TYPE.open) {
      const theirs = (id % 2 === 1) !== this.#init.initiator
      if (!theirs || stream !== undefined) { this.close(`a bad open of stream ${id}`); return }
      if (this.#streams.size >= (this.#init.maxStreams ?? 1024)) { this.send(TYPE.reset, id); return }
      const s = new MuxStream(this, id, this.#socket)
      this.#streams.set(id, s)
      this.#init.onStream(s)
      return
    }
    if (stream === undefined) return // a stream that ended here while its frames were on the way
    if (type === TYPE.data) {
      if (!stream.received(body)) this.close(`stream ${id} sent past its window`)
    } else if (type === TYPE.credit && body.length === 4) {
      stream.credited(body.readUInt32BE(0))
    } else if (type === TYPE.end) {
      stream.ended()
    } else if (type === TYPE.reset) {
      stream.reset()
    }
  }
}

class MuxStream extends Duplex {
  readonly #mux: TcpMux
  readonly #id: number
  #credit = STREAM_WINDOW
  /** Bytes taken in and not yet credited back, and bytes the peer may still send. */
  #uncredited = 0
  #window = STREAM_WINDOW
  #pending: { chunk: Buffer, cb: (err?: Error | null) => void } | undefined
  #endedHere = false
  #endedThere = false
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined

  constructor (mux: TcpMux, id: number, socket: Socket) {
    super({ allowHalfOpen: true })
    this.#mux = mux
    this.#id = id
    this.remoteAddress = socket.remoteAddress
    this.remotePort = socket.remotePort
  }

  override _write (chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#pending = { chunk, cb }
    this.#flush()
  }

  #flush (): void {
    const p = this.#pending
    if (p === undefined) return
    while (p.chunk.length > 0 && this.#credit > 0) {
      const n = Math.min(p.chunk.length, this.#credit, MAX_DATA)
      this.#mux.send(TYPE.data, this.#id, p.chunk.subarray(0, n))
      this.#credit -= n
      p.chunk = p.chunk.subarray(n)
    }
    if (p.chunk.length > 0) return
    this.#pending = undefined
    this.#mux.whenDrained(() => p.cb())
  }

  override _final (cb: (err?: Error | null) => void): void {
    this.#endedHere = true
    this.#mux.send(TYPE.end, this.#id)
    if (this.#endedThere) this.#mux.forget(this.#id)
    cb()
  }

  override _read (): void {
    if (this.#uncredited >= STREAM_WINDOW / 4) {
      this.#mux.send(TYPE.credit, this.#id, u32(this.#uncredited))
      this.#window += this.#uncredited
      this.#uncredited = 0
    }
  }

  override _destroy (err: Error | null, cb: (err?: Error | null) => void): void {
    if (!(this.#endedHere && this.#endedThere)) this.#mux.send(TYPE.reset, this.#id)
    this.#mux.forget(this.#id)
    const p = this.#pending
    this.#pending = undefined
    p?.cb(err ?? new Error('stream destroyed'))
    cb(err)
  }

  /** Bytes from the peer; false when it sent more than its window allowed. */
  received (bytes: Buffer): boolean {
    if (bytes.length > this.#window) return false
    this.#window -= bytes.length
    this.#uncredited += bytes.length
    this.push(bytes)
    return true
  }

  credited (n: number): void {
    this.#credit += n
    this.#flush()
  }

  ended (): void {
    this.#endedThere = true
    this.push(null)
    if (this.#endedHere) this.#mux.forget(this.#id)
  }

  reset (): void {
    this.#endedHere = this.#endedThere = true
    this.destroy(new Error('stream reset by the peer'))
  }
}

function u32 (n: number): Buffer {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32BE(n >>> 0, 0)
  return b
}
