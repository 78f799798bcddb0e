/**
 * A byte stream that outlives its carrier: the connections on a punched UDP
 * path run their TLS on one of these, so when the path dies mid-transfer the
 * opener reconnects through a relay, both ends tell each other how many bytes
 * they received, and each sends again what the other missed. TLS above sees
 * one unbroken stream; nothing is lost or repeated.
 *
 * On the carrier, frames: DATA (type 1, u32 length, bytes), ACK (type 2, u64
 * bytes received: also the heartbeat), FIN (type 3, u64 final offset), RESET
 * (type 4: destroyed on purpose, so a carrier closing after it is no loss). Each
 * side keeps what it sent until the peer acknowledges it, at most
 * `windowBytes` (writes wait beyond that). While either side has sent or
 * received in the last few seconds both send an ACK every `heartbeatMs`; a
 * carrier from which nothing arrived for `silenceMs` then, or that closed,
 * is lost (`'lost'` event): the owner attaches another one with `attach`.
 */
import { Duplex } from 'node:stream'

const DATA = 1
const ACK = 2
const FIN = 3
/** The session was destroyed on purpose: the peer ends its side too instead of waiting for a resume. */
const RESET = 4
const MAX_FRAME = 64 * 1024
/** How long after the last byte either way heartbeats go on. */
const ACTIVE_MS = 5000
/** Received bytes acknowledged at once past this, else within ACK_DELAY_MS. */
const ACK_EVERY = 64 * 1024
const ACK_DELAY_MS = 20
const EMPTY = Buffer.alloc(0)

export interface ResumableInit {
  /** Unacknowledged bytes kept for sending again; writes wait beyond this. @default 2 MiB */
  windowBytes?: number
  /** Nothing heard for this long while active: the carrier is lost. @default 1000 */
  silenceMs?: number
  /** @default 250 */
  heartbeatMs?: number
}

export class Resumable extends Duplex {
  readonly #window: number
  readonly #silenceMs: number
  #carrier: Duplex | undefined
  #detach: (() => void) | undefined
  /** Bytes written by our side so far, and the prefix of them the peer acknowledged. */
  #sent = 0
  #acked = 0
  /** Unacknowledged bytes, oldest first, from offset #acked. */
  #unacked: Buffer[] = []
  #received = 0
  #ackedReceived = 0
  #finAt: number | undefined
  #peerFinAt: number | undefined
  #lastHeard = Date.now()
  #lastActive = 0
  #writeWaiting: (() => void) | undefined
  #ackTimer: NodeJS.Timeout | undefined
  readonly #heartbeat: NodeJS.Timeout
  /** A frame header cut by the end of a carrier chunk, and the bytes of the DATA frame still to come. */
  #head: Buffer = EMPTY
  #dataLeft = 0
  #readPaused = false
  #peerReset = false

  constructor (init: ResumableInit = {}) {
    super({ allowHalfOpen: true })
    this.#window = init.windowBytes ?? 2 * 1024 * 1024
    this.#silenceMs = init.silenceMs ?? 1000
    this.#heartbeat = setInterval(() => { this.#beat() }, init.heartbeatMs ?? 250)
    this.#heartbeat.unref()
  }

  /** Bytes received in order so far: what the peer must send again from, on a new carrier. */
  get received (): number {
    return this.#received
  }

  get attached (): boolean {
    return this.#carrier !== undefined
  }

  /**
   * Carries on over `carrier`, whose far end has received `peerReceived` bytes
   * of ours (both learned it in the resume exchange): what it lacks goes again.
   */
  attach (carrier: Duplex, peerReceived: number): void {
    if (this.destroyed) { carrier.destroy(); return }
    if (peerReceived < this.#acked || peerReceived > this.#sent) {
      carrier.destroy()
      this.destroy(new Error(`the peer received ${peerReceived} bytes; ${this.#acked} to ${this.#sent} are possible`))
      return
    }
    // The old carrier (if this end had not noticed its loss yet) goes, with any frame it cut short.
    const old = this.#carrier
    this.#release()
    old?.destroy()
    this.#head = EMPTY
    this.#dataLeft = 0
    this.#ack(peerReceived)
    this.#carrier = carrier
    this.#lastHeard = Date.now()
    // A carrier given up on may still report its reset: never an uncaught error.
    carrier.on('error', () => {})
    const onData = (chunk: Buffer): void => { this.#onCarrierData(chunk) }
    const onGone = (): void => { if (this.#carrier === carrier) this.#lose() }
    carrier.on('data', onData)
    carrier.on('close', onGone)
    carrier.on('error', onGone)
    carrier.on('end', onGone)
    carrier.on('drain', () => { this.#maybeRelease() })
    this.#detach = () => {
      carrier.off('data', onData)
      carrier.off('close', onGone)
      carrier.off('error', onGone)
      carrier.off('end', onGone)
    }
    for (const b of this.#unacked) this.#frame(DATA, b)
    if (this.#finAt !== undefined) this.#frameOffset(FIN, this.#finAt)
    this.#frameOffset(ACK, this.#received)
    this.#ackedReceived = this.#received
    if (this.#readPaused) carrier.pause()
    this.#maybeRelease()
  }

  override _write (chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error) => void): void {
    const now = Date.now()
    // Idle, heartbeats stopped and nothing was heard: the silence clock starts again with these bytes. Else
    // a session idle for seconds (a pooled connection, reused) was lost at its next heartbeat.
    if (now - this.#lastActive >= ACTIVE_MS && this.#sent <= this.#acked) this.#lastHeard = now
    for (let at = 0; at < chunk.length; at += MAX_FRAME) {
      const part = chunk.subarray(at, at + MAX_FRAME)
      this.#unacked.push(part)
      this.#sent += part.length
      if (this.#carrier !== undefined) this.#frame(DATA, part)
    }
    this.#lastActive = now
    this.#writeWaiting = () => cb()
    this.#maybeRelease()
  }

  override _final (cb: (err?: Error) => void): void {
    this.#finAt = this.#sent
    if (this.#carrier !== undefined) this.#frameOffset(FIN, this.#finAt)
    cb()
    this.#maybeDone()
  }

  override _read (): void {
    if (!this.#readPaused) return
    this.#readPaused = false
    this.#carrier?.resume()
  }

  override _destroy (err: Error | null, cb: (err: Error | null) => void): void {
    clearInterval(this.#heartbeat)
    clearTimeout(this.#ackTimer)
    const carrier = this.#carrier
    this.#release()
    // Told, the peer ends its side at once; a carrier that just closed would look like a lost path.
    if (carrier !== undefined && !this.#peerReset && !carrier.destroyed) carrier.end(Buffer.from([RESET]))
    else carrier?.destroy()
    const waiting = this.#writeWaiting
    this.#writeWaiting = undefined
    waiting?.()
    cb(err)
  }

  #release (): void {
    this.#detach?.()
    this.#detach = undefined
    this.#carrier = undefined
  }

  #lose (): void {
    const carrier = this.#carrier
    if (carrier === undefined) return
    this.#release()
    carrier.destroy()
    this.emit('lost')
  }

  /** A write waits while the window is full or the carrier pushes back. */
  #maybeRelease (): void {
    if (this.#writeWaiting === undefined) return
    if (this.#sent - this.#acked >= this.#window) return
    if (this.#carrier !== undefined && this.#carrier.writableNeedDrain) return
    const waiting = this.#writeWaiting
    this.#writeWaiting = undefined
    waiting()
  }

  #ack (upTo: number): void {
    let drop = upTo - this.#acked
    while (drop > 0) {
      const first = this.#unacked[0] as Buffer
      if (first.length <= drop) { this.#unacked.shift(); drop -= first.length } else { this.#unacked[0] = first.subarray(drop); drop = 0 }
    }
    this.#acked = upTo
  }

  #frame (type: number, bytes: Buffer): void {
    const head = Buffer.allocUnsafe(5)
    head[0] = type
    head.writeUInt32BE(bytes.length, 1)
    this.#carrier?.write(head)
    this.#carrier?.write(bytes)
  }

  #frameOffset (type: number, offset: number): void {
    const f = Buffer.allocUnsafe(9)
    f[0] = type
    f.writeBigUInt64BE(BigInt(offset), 1)
    this.#carrier?.write(f)
  }

  /**
   * Frames as they arrive: a DATA frame's bytes are handed on as each carrier
   * chunk brings them (UDX delivers about 1.2 KB at a time; gathering a 64 KiB
   * frame first copied it over and over). Only headers are gathered.
   */
  #onCarrierData (chunk: Buffer): void {
    this.#lastHeard = Date.now()
    let buf = chunk
    while (buf.length > 0) {
      if (this.#dataLeft > 0) {
        const n = Math.min(this.#dataLeft, buf.length)
        const payload = buf.subarray(0, n)
        buf = buf.subarray(n)
        this.#dataLeft -= n
        this.#received += n
        this.#lastActive = Date.now()
        if (!this.push(payload) && !this.#readPaused) { this.#readPaused = true; this.#carrier?.pause() }
        this.#scheduleAck()
        continue
      }
      // A header: type and a u32 length (DATA) or a u64 offset (ACK, FIN); RESET is one byte.
      const head = this.#head.length > 0 ? Buffer.concat([this.#head, buf]) : buf
      const type = head[0]
      const size = type === DATA ? 5 : type === ACK || type === FIN ? 9 : 1
      if (type !== DATA && type !== ACK && type !== FIN && type !== RESET) { this.destroy(new Error(`unknown frame type ${String(type)}`)); return }
      if (head.length < size) { this.#head = Buffer.from(head); return }
      buf = head.subarray(size)
      this.#head = EMPTY
      if (type === DATA) {
        const length = head.readUInt32BE(1)
        if (length > MAX_FRAME) { this.destroy(new Error(`a frame of ${length} bytes`)); return }
        this.#dataLeft = length
      } else if (type === RESET) {
        this.#peerReset = true
        this.destroy(Object.assign(new Error('the connection was reset by the peer'), { code: 'ECONNRESET' }))
        return
      } else {
        const offset = Number(head.readBigUInt64BE(1))
        if (type === ACK) {
          if (offset > this.#sent) { this.destroy(new Error(`acknowledged ${offset} of ${this.#sent} bytes`)); return }
          if (offset > this.#acked) this.#ack(offset)
          this.#maybeRelease()
        } else if (this.#peerFinAt === undefined) {
          this.#peerFinAt = offset
        }
      }
    }
    if (this.#peerFinAt !== undefined && this.#received === this.#peerFinAt && !this.readableEnded) {
      this.push(null)
      this.#peerFinAt = Infinity
      this.#frameOffset(ACK, this.#received)
    }
    this.#maybeDone()
  }

  #scheduleAck (): void {
    if (this.#received - this.#ackedReceived >= ACK_EVERY) { this.#sendAck(); return }
    this.#ackTimer ??= setTimeout(() => { this.#ackTimer = undefined; this.#sendAck() }, ACK_DELAY_MS)
  }

  #sendAck (): void {
    clearTimeout(this.#ackTimer)
    this.#ackTimer = undefined
    if (this.#carrier === undefined) return
    this.#ackedReceived = this.#received
    this.#frameOffset(ACK, this.#received)
  }

  #beat (): void {
    if (this.#carrier === undefined) return
    const now = Date.now()
    const active = now - this.#lastActive < ACTIVE_MS || this.#sent > this.#acked
    if (!active) return
    if (now - this.#lastHeard > this.#silenceMs) { this.#lose(); return }
    this.#sendAck()
  }

  /** Both ways ended and everything acknowledged: the carrier can go. */
  #maybeDone (): void {
    if (this.#finAt === undefined || this.#acked < this.#finAt || this.#peerFinAt !== Infinity) return
    const carrier = this.#carrier
    this.#release()
    carrier?.end()
    clearInterval(this.#heartbeat)
  }
}
