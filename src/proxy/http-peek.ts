/**
 * Reads the head of an HTTP/1.x request off a client connection so a policy
 * can hash a header or a cookie; the bytes read are forwarded unchanged.
 */
import type { Socket } from 'node:net'

/** Larger heads are not parsed; the policy then falls back as for a missing key. */
export const MAX_HEAD_BYTES = 16 * 1024

export interface RequestHead {
  header (name: string): string | undefined
  cookie (name: string): string | undefined
}

const CRLFCRLF = Buffer.from('\r\n\r\n')

/** Parses a request head (`GET / HTTP/1.1\r\nName: value\r\n…`). Header names are case-insensitive; the first of repeated headers wins, cookies are merged. */
export function parseRequestHead (head: string): RequestHead {
  const headers = new Map<string, string>()
  const cookies = new Map<string, string>()
  const lines = head.split('\r\n')
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'cookie') {
      for (const part of value.split(';')) {
        const eq = part.indexOf('=')
        if (eq <= 0) continue
        const k = part.slice(0, eq).trim()
        if (!cookies.has(k)) cookies.set(k, part.slice(eq + 1).trim())
      }
    }
    if (!headers.has(name)) headers.set(name, value)
  }
  return {
    header: name => headers.get(name.toLowerCase()),
    cookie: name => cookies.get(name)
  }
}

export interface Peeked {
  /** The parsed head; undefined when the client sent no HTTP head in time (not HTTP, slow, huge) or closed. */
  head: RequestHead | undefined
  /** Everything read so far: the caller sends it to the endpoint before the rest. */
  bytes: Buffer
  /** The client already half-closed its side. */
  ended: boolean
}

/**
 * Reads until the end of the request head (at most MAX_HEAD_BYTES or
 * `timeoutMs`) and leaves the socket paused. The caller forwards `bytes`
 * first, so the endpoint receives the request unchanged.
 */
export async function peekRequestHead (socket: Socket, timeoutMs: number): Promise<Peeked> {
  return await new Promise(resolve => {
    const chunks: Buffer[] = []
    let size = 0
    const finish = (head: RequestHead | undefined, ended: boolean): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.pause()
      resolve({ head, bytes: Buffer.concat(chunks, size), ended })
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      size += chunk.length
      const all = chunks.length === 1 ? chunk : Buffer.concat(chunks, size)
      const end = all.indexOf(CRLFCRLF)
      if (end >= 0) finish(parseRequestHead(all.subarray(0, end).toString('latin1')), false)
      else if (size >= MAX_HEAD_BYTES) finish(undefined, false)
    }
    const onEnd = (): void => finish(undefined, true)
    const timer = setTimeout(() => finish(undefined, false), timeoutMs)
    socket.on('data', onData)
    socket.once('end', onEnd)
  })
}
