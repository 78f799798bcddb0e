/** Small socket helpers for control lines and frames (the data path, TCP punching). */
import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'

/** A control line longer than this is refused: nothing legitimate comes close. */
export const MAX_LINE_BYTES = 4096

/**
 * Splits the first newline-terminated line off a buffer. A line over
 * MAX_LINE_BYTES is refused whether or not its newline came in the same read.
 */
export function takeLine (buf: Buffer): { line: string, rest: Buffer } | undefined {
  const at = buf.indexOf(0x0a)
  if (at > MAX_LINE_BYTES || (at < 0 && buf.length > MAX_LINE_BYTES)) throw new Error(`control line longer than ${MAX_LINE_BYTES} bytes`)
  if (at < 0) return undefined
  return { line: buf.subarray(0, at).toString('utf8'), rest: buf.subarray(at + 1) }
}

/**
 * Reads one newline-terminated line; bytes after it stay in the stream
 * (unshifted) for whoever reads next, e.g. a TLS wrapper or a pipe.
 * `timeoutMs` 0 waits as long as the connection lives. Reads in paused mode
 * (`readable`), so once it returns the stream flows again as soon as someone
 * attaches a `data` listener or pipes it, and nothing is emitted before.
 */
export async function readLine (stream: Duplex, timeoutMs: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0)
    const done = (err: Error | undefined, line?: string, rest?: Buffer): void => {
      if (timer !== undefined) clearTimeout(timer)
      stream.off('readable', onReadable)
      stream.off('end', onEnd)
      stream.off('close', onEnd)
      stream.off('error', onError)
      if (rest !== undefined && rest.length > 0) stream.unshift(rest)
      if (err !== undefined) reject(err)
      else resolve(line as string)
    }
    const onReadable = (): void => {
      for (let chunk = stream.read() as Buffer | null; chunk !== null; chunk = stream.read() as Buffer | null) {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
        try {
          const got = takeLine(buf)
          if (got !== undefined) { done(undefined, got.line, got.rest); return }
        } catch (err) {
          done(err as Error)
          return
        }
      }
    }
    const onEnd = (): void => done(new Error('connection closed before the control line'))
    const onError = (err: Error): void => done(err)
    const timer = timeoutMs > 0 ? setTimeout(() => done(new Error(`no control line within ${timeoutMs} ms`)), timeoutMs) : undefined
    stream.on('readable', onReadable)
    stream.once('end', onEnd)
    stream.once('close', onEnd)
    stream.once('error', onError)
  })
}

/** A TLS record header: type, version (2), length (2). Records carry at most 2^14 bytes plus expansion. */
const TLS_HEADER = 5
const TLS_MAX_RECORD = 16_384 + 2048

/**
 * Reads in paused mode until `enough(bytes so far)` holds and resolves with
 * every byte read (none put back). Rejects when the stream ends or closes
 * first, or after `timeoutMs`; `what` names what was awaited in the error.
 */
async function gather (stream: Duplex, enough: (buf: Buffer) => boolean, timeoutMs: number, what: string): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0)
    const done = (err?: Error): void => {
      clearTimeout(timer)
      stream.off('readable', onReadable)
      stream.off('end', onEnd)
      stream.off('close', onEnd)
      stream.off('error', onError)
      if (err !== undefined) reject(err)
      else resolve(buf)
    }
    const onReadable = (): void => {
      for (let chunk = stream.read() as Buffer | null; chunk !== null; chunk = stream.read() as Buffer | null) {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
        if (enough(buf)) { done(); return }
      }
    }
    const onEnd = (): void => done(new Error(`closed before a ${what}`))
    // The stream's own error is the reason (a reset, say), not the close that follows it.
    const onError = (err: Error): void => done(err)
    const timer = setTimeout(() => done(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs)
    stream.on('readable', onReadable)
    stream.once('end', onEnd)
    stream.once('close', onEnd)
    stream.once('error', onError)
  })
}

/** Reads until `enough(bytes so far)` holds, then puts every byte read back so the next reader sees them all. */
export async function peekUntil (socket: Socket, enough: (buf: Buffer) => boolean, timeoutMs: number, what: string): Promise<Buffer> {
  const buf = await gather(socket, enough, timeoutMs, what)
  socket.unshift(buf)
  return buf
}

/** Reads exactly `n` bytes; bytes after them stay in the stream. */
export async function readExactly (stream: Duplex, n: number, timeoutMs: number): Promise<Buffer> {
  const buf = await gather(stream, b => b.length >= n, timeoutMs, `message of ${n} bytes`)
  if (buf.length > n) stream.unshift(buf.subarray(n))
  return buf.subarray(0, n)
}

/** The first byte, and when it opens a TLS record, the whole record with it. */
function firstRecordComplete (buf: Buffer): boolean {
  if (buf.length === 0) return false
  if (buf[0] !== 0x16) return true
  if (buf.length < TLS_HEADER) return false
  return buf.length >= TLS_HEADER + Math.min(buf.readUInt16BE(3), TLS_MAX_RECORD)
}

/**
 * Resolves with the first byte of a socket, put back with everything read so
 * the next reader sees it all. When that byte opens a TLS record (0x16), waits
 * for the whole record first: a TLS session (an OpenSSL object, tens of KB of
 * native memory) is created only for a client that sent a complete
 * ClientHello, not for one that sent a byte and went quiet.
 */
export async function peekFirstRecord (socket: Socket, timeoutMs: number): Promise<number> {
  return (await peekUntil(socket, firstRecordComplete, timeoutMs, 'complete first record'))[0] as number
}

/** Runs a handshake step on `raw`; the client's signal aborting destroys the socket, so no work goes on for a client that left. */
export async function untilAborted<T> (raw: { destroy: () => void }, signal: AbortSignal | undefined, step: () => Promise<T>): Promise<T> {
  if (signal === undefined) return await step()
  const onAbort = (): void => { raw.destroy() }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    return await step()
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
