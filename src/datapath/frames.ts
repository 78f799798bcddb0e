/**
 * Reusable connections. After its request line, a proxied connection's bytes
 * travel in frames on the TLS connection that carries it, and each
 * direction's end (the FIN) is a frame instead of the TLS connection's end.
 * Once both ends have passed, the TLS connection, its handshake long done,
 * carries the next proxied connection: under churn of short connections
 * neither agent makes a handshake per connection. One proxied connection at a
 * time per TLS connection, so flow control stays the kernel's, as before.
 *
 * Frame: type (1 byte), payload length (3 bytes, big-endian), payload.
 * - DATA (0): bytes of the proxied connection.
 * - END (1): that direction ended; no payload.
 *
 * A proxied connection that ends any other way (reset, the TLS connection
 * lost, a frame that is neither) is not reused: the TLS connection is closed,
 * and the far side resets its socket.
 */
import { Duplex } from 'node:stream'

export const FRAME_DATA = 0
export const FRAME_END = 1
const HEADER = 4
export const MAX_PAYLOAD = 0xff_ff_ff
const END_FRAME = Buffer.from([FRAME_END, 0, 0, 0])

/** The header of a DATA frame carrying `length` bytes. */
export function dataHeader (length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER)
  h[0] = FRAME_DATA
  h.writeUIntBE(length, 1, 3)
  return h
}

/** `bytes` as DATA frames (one per MAX_PAYLOAD bytes), then END when `end`: what a sender writes, for tests and fuzzing. */
export function encodeFrames (bytes: Uint8Array, end: boolean): Buffer {
  const parts: Buffer[] = []
  for (let at = 0; at < bytes.length; at += MAX_PAYLOAD) {
    const piece = bytes.subarray(at, at + MAX_PAYLOAD)
    parts.push(dataHeader(piece.length), Buffer.from(piece))
  }
  if (end) parts.push(END_FRAME)
  return Buffer.concat(parts)
}

/**
 * Cuts one direction's bytes into payload pieces, however they arrive. Pure:
 * it never buffers a payload, only a header split between chunks.
 */
export class FrameReader {
  readonly #header = Buffer.alloc(HEADER)
  #have = 0
  /** Payload bytes still due in the current DATA frame. */
  #left = 0
  #ended = false

  get ended (): boolean {
    return this.#ended
  }

  /**
   * Hands each payload piece of `chunk` to `onData`. Returns what follows the
   * END frame once it arrived (possibly empty: the next request's bytes), or
   * undefined while the direction goes on. Throws on a frame that is neither
   * DATA nor END.
   */
  feed (chunk: Buffer, onData: (payload: Buffer) => void): Buffer | undefined {
    if (this.#ended) return chunk
    let at = 0
    while (at < chunk.length) {
      if (this.#left > 0) {
        const n = Math.min(this.#left, chunk.length - at)
        onData(chunk.subarray(at, at + n))
        at += n
        this.#left -= n
        continue
      }
      let type: number
      let length: number
      if (this.#have === 0 && chunk.length - at >= HEADER) {
        type = chunk[at] as number
        length = chunk.readUIntBE(at + 1, 3)
        at += HEADER
      } else {
        const n = Math.min(HEADER - this.#have, chunk.length - at)
        chunk.copy(this.#header, this.#have, at, at + n)
        this.#have += n
        at += n
        if (this.#have < HEADER) break
        this.#have = 0
        type = this.#header[0] as number
        length = this.#header.readUIntBE(1, 3)
      }
      if (type === FRAME_DATA) {
        this.#left = length
      } else if (type === FRAME_END && length === 0) {
        this.#ended = true
        return chunk.subarray(at)
      } else {
        throw new Error(`bad frame (type ${type}, length ${length})`)
      }
    }
    return undefined
  }
}

/**
 * One proxied connection on a TLS connection, as a duplex: what is written
 * goes out in DATA frames, `end()` sends END, and what the far side sends is
 * read. When both ENDs have passed and the stream closes, `onReusable` gets
 * the TLS connection back, paused, with no listener of this stream left and
 * any bytes that followed the far side's END put back. Destroyed any other
 * way, it closes the TLS connection.
 */
export class FramedStream extends Duplex {
  readonly #tls: Duplex
  readonly #reader = new FrameReader()
  readonly #onReusable: (tls: Duplex) => void
  #reading = false
  #sentEnd = false
  #rest: Buffer | undefined
  readonly #onData = (chunk: Buffer): void => { this.#take(chunk) }
  readonly #onEnd = (): void => {
    // After both ENDs the far agent may close a connection it will not keep; this stream is done anyway.
    if (this.#sentEnd && this.#reader.ended) return
    this.destroy(new Error('the far agent closed the connection mid-stream'))
  }

  readonly #onError = (err: Error): void => { this.destroy(err) }

  constructor (tls: Duplex, onReusable: (tls: Duplex) => void) {
    super({ allowHalfOpen: true })
    this.#tls = tls
    this.#onReusable = onReusable
    tls.on('end', this.#onEnd)
    tls.on('close', this.#onEnd)
    tls.on('error', this.#onError)
  }

  /** Starts reading the far side's frames: on the connecting side only once its request was answered. */
  startReading (): void {
    if (this.#reading || this.destroyed) return
    this.#reading = true
    this.#tls.on('data', this.#onData)
    this.#tls.resume()
  }

  #take (chunk: Buffer): void {
    let rest: Buffer | undefined
    try {
      rest = this.#reader.feed(chunk, payload => { if (!this.push(payload)) this.#tls.pause() })
    } catch (err) {
      this.destroy(err as Error)
      return
    }
    if (rest === undefined) return
    this.#rest = rest
    this.#tls.pause()
    this.#tls.off('data', this.#onData)
    this.push(null)
  }

  override _read (): void {
    if (this.#reading && !this.#reader.ended) this.#tls.resume()
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    let ok = true
    if (chunk.length <= 16_384) {
      // Small: header and bytes in one buffer, one TLS record.
      const frame = Buffer.allocUnsafe(HEADER + chunk.length)
      frame[0] = FRAME_DATA
      frame.writeUIntBE(chunk.length, 1, 3)
      chunk.copy(frame, HEADER)
      ok = this.#tls.write(frame)
    } else {
      // Large: written together (corked), so that the header takes no record of its own.
      this.#tls.cork()
      for (let at = 0; at < chunk.length; at += MAX_PAYLOAD) {
        const piece = chunk.subarray(at, at + MAX_PAYLOAD)
        this.#tls.write(dataHeader(piece.length))
        ok = this.#tls.write(piece)
      }
      this.#tls.uncork()
    }
    if (ok) done()
    else this.#tls.once('drain', () => { done() })
  }

  override _final (done: (err?: Error | null) => void): void {
    this.#sentEnd = true
    this.#tls.write(END_FRAME)
    done()
  }

  override _destroy (err: Error | null, done: (err?: Error | null) => void): void {
    const tls = this.#tls
    tls.off('data', this.#onData)
    tls.off('end', this.#onEnd)
    tls.off('close', this.#onEnd)
    tls.off('error', this.#onError)
    if (err === null && this.#sentEnd && this.#reader.ended && !tls.destroyed && !tls.readableEnded && tls.writable) {
      tls.pause()
      if (this.#rest !== undefined && this.#rest.length > 0) tls.unshift(this.#rest)
      this.#onReusable(tls)
    } else {
      tls.destroy()
    }
    done(err)
  }
}
