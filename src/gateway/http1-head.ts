/**
 * HTTP/1.1 message heads for the gateway's fast path (`http1-fast.ts`).
 *
 * The request parser accepts a strict subset of RFC 9112 and answers
 * `other` for anything outside it: another version, an absolute or `*`
 * target, obs-fold, bare LF, bytes past ASCII, a header named twice,
 * Transfer-Encoding, Upgrade, Expect, a Content-Length that is not one run
 * of digits. Those requests go to Node's own parser (llhttp) unchanged, which
 * serves or refuses them as before; so the fast path never has to decide an
 * ambiguous message, the root of request smuggling.
 */

export const MAX_HEAD_BYTES = 16 * 1024
const MAX_HEADERS = 100
/** Longest chunk-size line (with extensions) a backend may send. */
const MAX_CHUNK_LINE = 4096

export interface RequestHead {
  method: string
  /** The origin-form target: path and query. */
  target: string
  /** Header names in lower case, each at most once, values trimmed. */
  headers: Record<string, string>
  /** Body length; 0 when the request has none. */
  contentLength: number
  /** The client asked to close after the response (`Connection: close`). */
  close: boolean
  /** Bytes of the head, blank line included. */
  size: number
}

export interface ResponseHead {
  status: number
  reason: string
  /** Header names in lower case; a name sent several times keeps every value. */
  headers: Record<string, string | string[]>
  /** How the body ends: its length, chunked coding, or the connection's close. */
  framing: { kind: 'length', length: number } | { kind: 'chunked' } | { kind: 'close' }
  /** The backend keeps the connection open after this response. */
  keepAlive: boolean
  size: number
}

/** tchar of RFC 9110 §5.6.2, by byte. */
const TCHAR = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1

const CR = 13
const LF = 10

/** Index of the blank line's end (`\r\n\r\n`), or -1 while the head is incomplete. */
function headEnd (buf: Buffer): number {
  const i = buf.indexOf('\r\n\r\n', 0, 'latin1')
  return i < 0 ? -1 : i + 4
}

/** A run of tchar from `from`, up to `stop`; the index after it. */
function token (buf: Buffer, from: number, stop: number): number {
  let i = from
  while (i < stop && (buf[i] as number) < 128 && TCHAR[buf[i] as number] === 1) i++
  return i
}

/**
 * Header lines in the string of a head between `from` and `end` (the blank
 * line's start), each `name: value` ending in CRLF. Undefined when a line
 * breaks the rules: checked by one regular expression over all the lines,
 * then cut by indexOf, which costs a third of reading them byte by byte.
 */
function headerLines (head: string, from: number, end: number, lines: RegExp): Array<[string, string]> | undefined {
  // test(), not exec(): no match array and substring for each head.
  lines.lastIndex = from
  if (!lines.test(head) || lines.lastIndex !== end) return undefined
  const out: Array<[string, string]> = []
  let i = from
  while (i < end) {
    const colon = head.indexOf(':', i)
    const lineEnd = head.indexOf('\r\n', colon)
    let v = colon + 1
    while (v < lineEnd && isBlank(head.charCodeAt(v))) v++
    let vEnd = lineEnd
    while (vEnd > v && isBlank(head.charCodeAt(vEnd - 1))) vEnd--
    out.push([head.slice(i, colon).toLowerCase(), head.slice(v, vEnd)])
    if (out.length > MAX_HEADERS) return undefined
    i = lineEnd + 2
  }
  return out
}

function isBlank (c: number): boolean {
  return c === 0x20 || c === 9
}

/** Header lines (RFC 9110 token, colon, visible ASCII, space and tab), from `lastIndex` on; a backend's values may also hold obs-text. */
const REQUEST_LINES = /(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n)*/y
const RESPONSE_LINES = /(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*/y

/** A response's status line, from the head's start. */
const STATUS_LINE = /HTTP\/1\.[01] [1-9]\d\d(?: [^\r\n]*)?\r\n/y

/** Whether a comma-separated header value holds token `t` (lower case); the usual values are answered without splitting. */
function hasToken (value: string, t: string): boolean {
  if (value === t) return true
  const lower = value.toLowerCase()
  return lower.includes(t) && lower.split(',').some(s => s.trim() === t)
}

const DIGITS = /^\d{1,15}$/

const VERSION = Buffer.from('HTTP/1.1\r\n')

/** Whether an incomplete head can still become one the fast path takes: its request line so far fits, and no control bytes follow. */
function plausibleStart (buf: Buffer): boolean {
  const methodEnd = token(buf, 0, buf.length)
  if (methodEnd === buf.length) return true
  if (methodEnd === 0 || buf[methodEnd] !== 0x20) return false
  if (methodEnd + 1 < buf.length && buf[methodEnd + 1] !== 0x2f) return false
  let t = methodEnd + 1
  while (t < buf.length && (buf[t] as number) > 0x20 && (buf[t] as number) < 0x7f) t++
  if (t === buf.length) return true
  if (buf[t] !== 0x20) return false
  const version = buf.subarray(t + 1, t + 1 + VERSION.length)
  if (!version.equals(VERSION.subarray(0, version.length))) return false
  for (let i = t + 1 + VERSION.length; i < buf.length; i++) {
    const c = buf[i] as number
    if ((c < 0x20 && c !== 9 && c !== CR && c !== LF) || c > 0x7e) return false
  }
  return true
}

/**
 * The request head at the start of `buf`: `incomplete` while its blank line
 * has not arrived (and it is below the size cap), `other` when the fast path
 * leaves it to Node's parser.
 */
export function parseRequestHead (buf: Buffer): RequestHead | 'incomplete' | 'other' {
  const end = headEnd(buf)
  // Node's parser refuses garbage as it comes; waiting for a blank line would hold it till the deadline.
  if (end < 0) return buf.length >= MAX_HEAD_BYTES || !plausibleStart(buf) ? 'other' : 'incomplete'
  if (end > MAX_HEAD_BYTES) return 'other'
  const lineEnd = buf.indexOf('\r\n', 0, 'latin1')
  // METHOD SP origin-form SP HTTP/1.1
  const methodEnd = token(buf, 0, lineEnd)
  if (methodEnd === 0 || buf[methodEnd] !== 0x20 || buf[methodEnd + 1] !== 0x2f) return 'other'
  let t = methodEnd + 1
  while (t < lineEnd && (buf[t] as number) > 0x20 && (buf[t] as number) < 0x7f) t++
  if (buf[t] !== 0x20 || lineEnd - t !== 9 || buf.toString('latin1', t + 1, lineEnd) !== 'HTTP/1.1') return 'other'
  const head = buf.toString('latin1', 0, end)
  const lines = headerLines(head, lineEnd + 2, end - 2, REQUEST_LINES)
  if (lines === undefined) return 'other'
  const headers: Record<string, string> = {}
  for (const [name, value] of lines) {
    // Node merges or drops repeated headers by name; rather than copy its rules, leave these to it.
    if (Object.hasOwn(headers, name)) return 'other'
    headers[name] = value
  }
  if (headers.host === undefined || headers['transfer-encoding'] !== undefined || headers.upgrade !== undefined || headers.expect !== undefined) return 'other'
  const connection = headers.connection ?? ''
  if (hasToken(connection, 'upgrade')) return 'other'
  const length = headers['content-length']
  if (length !== undefined && !DIGITS.test(length)) return 'other'
  return {
    method: head.slice(0, methodEnd),
    target: head.slice(methodEnd + 1, t),
    headers,
    contentLength: length === undefined ? 0 : Number(length),
    close: hasToken(connection, 'close'),
    size: end
  }
}

/**
 * A backend's response head at the start of `buf`, for a request of
 * `method`: `incomplete` until its blank line, `invalid` for anything that
 * cannot be framed safely (the connection is then dropped, and the client
 * answered 502).
 */
export function parseResponseHead (buf: Buffer, method: string): ResponseHead | 'incomplete' | 'invalid' {
  const end = headEnd(buf)
  if (end < 0) return buf.length >= MAX_HEAD_BYTES ? 'invalid' : 'incomplete'
  if (end > MAX_HEAD_BYTES) return 'invalid'
  const head = buf.toString('latin1', 0, end)
  const lineEnd = head.indexOf('\r\n')
  STATUS_LINE.lastIndex = 0
  if (!STATUS_LINE.test(head) || STATUS_LINE.lastIndex !== lineEnd + 2) return 'invalid'
  const lines = headerLines(head, lineEnd + 2, end - 2, RESPONSE_LINES)
  if (lines === undefined) return 'invalid'
  const headers: Record<string, string | string[]> = {}
  for (const [name, value] of lines) {
    const cur = headers[name]
    headers[name] = cur === undefined ? value : Array.isArray(cur) ? [...cur, value] : [cur, value]
  }
  // `HTTP/1.x NNN reason`: the digits and the reason sit at fixed places.
  const status = (head.charCodeAt(9) - 48) * 100 + (head.charCodeAt(10) - 48) * 10 + head.charCodeAt(11) - 48
  const http10 = head.charCodeAt(7) === 0x30
  const c = headers.connection
  const connection = c === undefined ? '' : typeof c === 'string' ? c : c.join(',')
  let keepAlive = http10 ? hasToken(connection, 'keep-alive') : !hasToken(connection, 'close')
  let framing: ResponseHead['framing']
  const te = headers['transfer-encoding']
  const cl = headers['content-length']
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) {
    framing = { kind: 'length', length: 0 }
  } else if (te !== undefined) {
    // Both Transfer-Encoding and Content-Length: the latter is ignored, and the connection not reused (RFC 9112 §6.3).
    if (cl !== undefined) keepAlive = false
    const codings = [te].flat().join(',').toLowerCase().split(',').map(s => s.trim())
    if (codings[codings.length - 1] === 'chunked') framing = { kind: 'chunked' }
    else { framing = { kind: 'close' }; keepAlive = false }
  } else if (cl !== undefined) {
    // Repeated equal values (`5, 5` or two lines) are one length (RFC 9110 §8.6).
    const values = typeof cl === 'string' && DIGITS.test(cl) ? [cl] : [...new Set([cl].flat().flatMap(v => v.split(',')).map(v => v.trim()))]
    const only = values.length === 1 ? values[0] as string : ''
    if (!DIGITS.test(only)) return 'invalid'
    framing = { kind: 'length', length: Number(only) }
  } else {
    framing = { kind: 'close' }
    keepAlive = false
  }
  return { status, reason: lineEnd > 13 ? head.slice(13, lineEnd) : '', headers, framing, keepAlive, size: end }
}

/** A message head: the first line, then each header (one line per value), then the blank line. Values come from clients, backends and routes: no line breaks get through. */
export function serializeHead (firstLine: string, headers: Readonly<Record<string, string | string[]>>): string {
  let out = `${firstLine}\r\n`
  for (const k in headers) {
    const v = headers[k] as string | string[]
    if (Array.isArray(v)) for (const one of v) out += `${k}: ${oneLine(one)}\r\n`
    else out += `${k}: ${oneLine(v)}\r\n`
  }
  return `${out}\r\n`
}

/** A header value without line breaks; most have none, and a search costs less than a replace. */
function oneLine (v: string): string {
  return v.includes('\r') || v.includes('\n') ? v.replace(/[\r\n]/g, '') : v
}

/**
 * Follows a chunked body as it passes through unchanged, to know where it
 * ends (after the last chunk and its trailers). Throws on a malformed body.
 */
export class ChunkedEnd {
  #state: 'size' | 'data' | 'dataCrlf' | 'trailers' | 'done' = 'size'
  #remaining = 0
  #line = ''

  get done (): boolean { return this.#state === 'done' }

  /** Consumes `chunk`; returns how many of its bytes belong to the body (all of them unless it ended inside). */
  feed (chunk: Buffer): number {
    let i = 0
    while (i < chunk.length && this.#state !== 'done') {
      if (this.#state === 'data') {
        const n = Math.min(this.#remaining, chunk.length - i)
        i += n
        this.#remaining -= n
        if (this.#remaining === 0) this.#state = 'dataCrlf'
        continue
      }
      // A line: chunk size, the CRLF after data, or a trailer line.
      const nl = chunk.indexOf(LF, i)
      const stop = nl < 0 ? chunk.length : nl + 1
      this.#line += chunk.toString('latin1', i, stop)
      i = stop
      if (this.#line.length > MAX_CHUNK_LINE) throw new Error('chunk line too long')
      if (nl < 0) break
      const line = this.#line.endsWith('\r\n') ? this.#line.slice(0, -2) : undefined
      this.#line = ''
      if (line === undefined) throw new Error('bare LF in chunked body')
      if (this.#state === 'dataCrlf') {
        if (line !== '') throw new Error('chunk data longer than its size')
        this.#state = 'size'
      } else if (this.#state === 'size') {
        const m = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line)
        if (m === null) throw new Error('bad chunk size')
        this.#remaining = parseInt(m[1] as string, 16)
        this.#state = this.#remaining === 0 ? 'trailers' : 'data'
      } else if (line === '') {
        this.#state = 'done'
      }
    }
    return i
  }
}
