/**
 * The SOCKS5 handshake (RFC 1928) read from what has arrived so far. Each
 * parser returns `{ need }` while the buffer is short (the total length it
 * must reach, always more than it has), or the message and its length once
 * it is whole; a malformed one throws Socks5ProtocolError. Nothing past the
 * message is looked at, so a caller that reads exactly `need` bytes never
 * takes the client's first data bytes.
 */
import { Socks5ProtocolError } from './errors.ts'

export type Parsed<T> = { need: number } | { value: T, length: number }

export interface Greeting {
  /** Authentication methods the client offers (0x00: none). */
  methods: number[]
}

export interface Request {
  /** 0x01 CONNECT, 0x02 BIND, 0x03 UDP ASSOCIATE. */
  command: number
  /** 0x01 IPv4, 0x03 domain name, 0x04 IPv6. */
  addressType: number
  /** The domain name; undefined for an IP address. */
  host: string | undefined
  port: number
}

const VERSION = 0x05
const DOMAIN = 0x03
/** Address bytes by type; a domain is a length byte and that many bytes. */
const IP_BYTES: Record<number, number> = { 0x01: 4, 0x04: 16 }

/** VER NMETHODS METHODS... */
export function parseGreeting (buf: Buffer): Parsed<Greeting> {
  if (buf.length >= 1 && buf[0] !== VERSION) throw new Socks5ProtocolError(`not SOCKS5 (version ${String(buf[0])})`)
  if (buf.length < 2) return { need: 2 }
  const length = 2 + (buf[1] as number)
  if (buf.length < length) return { need: length }
  return { value: { methods: [...buf.subarray(2, length)] }, length }
}

/** VER CMD RSV ATYP ADDR PORT */
export function parseRequest (buf: Buffer): Parsed<Request> {
  if (buf.length >= 1 && buf[0] !== VERSION) throw new Socks5ProtocolError(`not a SOCKS5 request (version ${String(buf[0])})`)
  if (buf.length < 4) return { need: 4 }
  const addressType = buf[3] as number
  let at: number
  if (addressType === DOMAIN) {
    if (buf.length < 5) return { need: 5 }
    const n = buf[4] as number
    // Nothing is named by an empty name.
    if (n === 0) throw new Socks5ProtocolError('empty domain name')
    at = 5 + n
  } else {
    const n = IP_BYTES[addressType]
    if (n === undefined) throw new Socks5ProtocolError(`address type ${String(addressType)}`)
    at = 4 + n
  }
  const length = at + 2
  if (buf.length < length) return { need: length }
  const host = addressType === DOMAIN ? buf.toString('utf8', 5, at) : undefined
  return { value: { command: buf[1] as number, addressType, host, port: ((buf[at] as number) << 8) | (buf[at + 1] as number) }, length }
}
