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
 * - RAW (2): no payload; the rest of that direction is bytes without frames,
 *   ended by the TLS connection's own end, and the connection is not reused.
 *   A sender switches after RAW_AFTER bytes: framing cost a bulk transfer
 *   about a sixth more CPU on the receiving agent (Node's stream machinery per
 *   piece), while reuse matters for short connections.
 *
 * A proxied connection that ends any other way (reset, the TLS connection
 * lost, a frame that is none of these) is not reused: the TLS connection is
 * closed, and the far side resets its socket.
 */
import { Duplex } from 'node:stream'

export const FRAME_DATA = 0
export const FRAME_END = 1
export const FRAME_RAW = 2
/** Bytes a direction sends in frames before it goes raw. */
export const RAW_AFTER = 256 * 1024
const HEADER = 4
export const MAX_PAYLOAD = 0xff_ff_ff
const END_FRAME = Buffer.from([FRAME_END, 0, 0, 0])
const RAW_FRAME = Buffer.from([FRAME_RAW, 0, 0, 0])

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
  #raw = false

  /** END arrived. */
  get ended (): boolean {
    return this.#ended
  }

  /** RAW arrived: everything after it is payload. */
  get raw (): boolean {
    return this.#raw
  }

  /**
   * Hands each payload piece of `chunk` to `onData`. Returns what follows the
   * END frame once it arrived (possibly empty: the next request's bytes), or
   * undefined while the direction goes on. Throws on a frame that is none of
   * DATA, END and RAW.
   */
  feed (chunk: Buffer, onData: (payload: Buffer) => void): Buffer | undefined {
    if (this.#ended) return chunk
    let at = 0
    while (at < chunk.length) {
      if (this.#left > 0 || this.#raw) {
        const n = this.#raw ? chunk.length - at : Math.min(this.#left, chunk.length - at)
        // A chunk that is all payload (most of a bulk transfer) goes on as it is.
        onData(n === chunk.length ? chunk : chunk.subarray(at, at + n))
        at += n
        if (!this.#raw) this.#left -= n
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
      } else if (type === FRAME_RAW && length === 0) {
        this.#raw = true
      } else {
        throw new Error(`bad frame (type ${type}, length ${length})`)
      }
    }
    return undefined
  }
}

/**
 * One proxied connection on a TLS connection, as a duplex: what is written
 * goes out in DATA frames (raw after RAW_AFTER bytes), `end()` sends END (or
 * ends the TLS connection's sending side once raw), and what the far side
 * sends is read. When both ENDs have passed and the stream closes,
 * `onReusable` gets the TLS connection back, paused, with no listener of this
 * stream left and any bytes that followed the far side's END put back. After
 * RAW either way, both sides end the TLS connection as a connection of its
 * own would end. Destroyed any other way, it closes the TLS connection.
 */
export class FramedStream extends Duplex {
  readonly #tls: Duplex
  readonly #reader = new FrameReader()
  readonly #onReusable: (tls: Duplex) => void
  #reading = false
  #sent = 0
  #sentEnd = false
  #rawOut = false
  /** Either direction went raw: the TLS connection ends with this proxied connection. */
  #oneShot = false
  /** The far side's direction ended: END, or the TLS connection's end after RAW. */
  #readDone = false
  #rest: Buffer | undefined
  readonly #onData = (chunk: Buffer): void => { this.#take(chunk) }
  readonly #onPayload = (payload: Buffer): void => { if (!this.push(payload)) this.#tls.pause() }
  readonly #onEnd = (): void => {
    // A raw direction ends with the TLS connection's end.
    if (this.#reader.raw) { this.#readDone = true; this.push(null); return }
    // After its END the far agent ends the TLS connection only when it will not be reused: after RAW from
    // this side, or after both ENDs. Before ours otherwise, it gave up (its endpoint reset).
    if (this.#reader.ended && (this.#oneShot || this.#sentEnd)) return
    this.destroy(new Error('the far agent closed the connection mid-stream'))
  }

  readonly #onClose = (): void => {
    // Closed before both directions ended: what is left cannot arrive or go out.
    if (!this.#readDone || !this.#sentEnd) this.destroy(new Error('the far agent closed the connection mid-stream'))
  }

  readonly #onError = (err: Error): void => { this.destroy(err) }

  constructor (tls: Duplex, onReusable: (tls: Duplex) => void) {
    // The default high-water mark (64 KiB) is a socket's largest read: each such write would pause the client.
    super({ allowHalfOpen: true, writableHighWaterMark: 128 * 1024 })
    this.#tls = tls
    this.#onReusable = onReusable
    tls.on('end', this.#onEnd)
    tls.on('close', this.#onClose)
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
    const wasRaw = this.#reader.raw
    let rest: Buffer | undefined
    try {
      rest = this.#reader.feed(chunk, this.#onPayload)
    } catch (err) {
      this.destroy(err as Error)
      return
    }
    if (!wasRaw && this.#reader.raw) this.#goOneShot()
    if (rest === undefined) return
    this.#rest = rest
    this.#readDone = true
    this.#tls.pause()
    this.#tls.off('data', this.#onData)
    this.push(null)
  }

  /** This connection will not be reused: a direction that already ended in a frame ends the TLS connection's sending side too. */
  #goOneShot (): void {
    if (this.#oneShot) return
    this.#oneShot = true
    if (this.#sentEnd) this.#tls.end()
  }

  override _read (): void {
    if (this.#reading && !this.#reader.ended) this.#tls.resume()
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    let ok: boolean
    if (this.#rawOut) {
      ok = this.#tls.write(chunk)
    } else if (this.#sent + chunk.length > RAW_AFTER) {
      this.#rawOut = true
      this.#goOneShot()
      ok = this.#writeFramed(RAW_FRAME, chunk)
    } else {
      // At most RAW_AFTER bytes, far below a frame's largest payload.
      this.#sent += chunk.length
      ok = this.#writeFramed(dataHeader(chunk.length), chunk)
    }
    if (ok) done()
    else this.#tls.once('drain', () => { done() })
  }

  /** `header` and `bytes` in one buffer, one TLS record: corked as two they went through TLS's writev, which copies into a zeroed buffer of its own. */
  #writeFramed (header: Buffer, bytes: Buffer): boolean {
    const frame = Buffer.allocUnsafe(HEADER + bytes.length)
    header.copy(frame, 0)
    bytes.copy(frame, HEADER)
    return this.#tls.write(frame)
  }

  override _final (done: (err?: Error | null) => void): void {
    this.#sentEnd = true
    if (!this.#rawOut) this.#tls.write(END_FRAME)
    if (this.#oneShot) this.#tls.end()
    done()
  }

  override _destroy (err: Error | null, done: (err?: Error | null) => void): void {
    const tls = this.#tls
    tls.off('data', this.#onData)
    tls.off('end', this.#onEnd)
    tls.off('close', this.#onClose)
    tls.off('error', this.#onError)
    const clean = err === null && this.#sentEnd && this.#readDone
    if (clean && !this.#oneShot && !tls.destroyed && !tls.readableEnded && tls.writable) {
      tls.pause()
      if (this.#rest !== undefined && this.#rest.length > 0) tls.unshift(this.#rest)
      this.#onReusable(tls)
    } else if (clean && !tls.destroyed) {
      // Both sides end it; it closes once the far side's end arrives, after what is still queued went out.
      tls.on('error', () => {})
      tls.resume()
    } else {
      tls.destroy()
    }
    done(err)
  }
}
