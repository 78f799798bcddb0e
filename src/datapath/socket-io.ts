/** Small socket helpers for the data path's control lines. */
import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import { takeLine } from './wire.ts'

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

/** Resolves with the first byte of a socket, put back so the next reader sees it. */
export async function peekByte (socket: Socket, timeoutMs: number): Promise<number> {
  return await new Promise((resolve, reject) => {
    const done = (err?: Error, byte?: number): void => {
      clearTimeout(timer)
      socket.off('readable', onReadable)
      socket.off('close', onClose)
      if (err !== undefined) reject(err)
      else resolve(byte as number)
    }
    const onReadable = (): void => {
      const b = socket.read(1) as Buffer | null
      if (b === null) return
      socket.unshift(b)
      done(undefined, b[0])
    }
    const onClose = (): void => done(new Error('closed before the first byte'))
    const timer = setTimeout(() => done(new Error(`nothing received within ${timeoutMs} ms`)), timeoutMs)
    socket.on('readable', onReadable)
    socket.once('close', onClose)
  })
}
