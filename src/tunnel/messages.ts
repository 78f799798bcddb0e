/**
 * Upstream's handshake messages (proto2, go-msgio framing: uvarint length,
 * then the message; at most 4096 bytes). Two small messages with five scalar
 * fields: a hand-written codec is smaller than a protobuf runtime and is
 * pinned byte for byte against upstream's examples in the tests.
 */
export const PROXY_PROTOCOL = '/libp2p/tunnel-proxy/1.0.0'
export const DISCOVERY_PROTOCOL = '/libp2p/tunnel-discovery/1.0.0'
export const MAX_MESSAGE = 4096

export const MessageType = { CONNECT: 0, SUCCESS: 1, FAILED: 2 } as const

export interface ProxyMessage {
  type: number
  protocol?: string
  nodeName?: string
  ip?: string
  port?: number
}

function varint (n: number): number[] {
  const out: number[] = []
  let v = n
  while (v >= 0x80) { out.push((v & 0x7f) | 0x80); v = Math.floor(v / 128) }
  out.push(v)
  return out
}

function field (tag: number, bytes: number[] | Buffer): number[] {
  return [tag, ...varint(bytes.length), ...bytes]
}

/** One length-prefixed Proxy message. Go sets every field it knows, so CONNECT carries all five. */
export function encodeProxy (m: ProxyMessage): Buffer {
  const body: number[] = [0x08, ...varint(m.type)]
  if (m.protocol !== undefined) body.push(...field(0x12, Buffer.from(m.protocol)))
  if (m.nodeName !== undefined) body.push(...field(0x1a, Buffer.from(m.nodeName)))
  if (m.ip !== undefined) body.push(...field(0x22, Buffer.from(m.ip)))
  if (m.port !== undefined) body.push(0x28, ...varint(m.port))
  return Buffer.from([...varint(body.length), ...body])
}

function readVarint (buf: Uint8Array, at: number): [number, number] | undefined {
  let v = 0
  let mul = 1
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i] as number
    v += (b & 0x7f) * mul
    if ((b & 0x80) === 0) return [v, i + 1]
    mul *= 128
  }
  return undefined
}

export function decodeProxyBody (body: Uint8Array): ProxyMessage {
  const m: ProxyMessage = { type: -1 }
  let at = 0
  while (at < body.length) {
    const tag = readVarint(body, at)
    if (tag === undefined) throw new Error('truncated field tag')
    at = tag[1]
    const wire = tag[0] & 7
    const num = Math.floor(tag[0] / 8)
    if (wire === 0) {
      const v = readVarint(body, at)
      if (v === undefined) throw new Error('truncated varint')
      at = v[1]
      if (num === 1) m.type = v[0]
      else if (num === 5) m.port = v[0] > 0x7fffffff ? v[0] - 2 ** 64 : v[0]
    } else if (wire === 2) {
      const len = readVarint(body, at)
      if (len === undefined || len[1] + len[0] > body.length) throw new Error('truncated bytes field')
      const text = Buffer.from(body.subarray(len[1], len[1] + len[0])).toString('utf8')
      at = len[1] + len[0]
      if (num === 2) m.protocol = text
      else if (num === 3) m.nodeName = text
      else if (num === 4) m.ip = text
    } else {
      throw new Error(`unsupported wire type ${wire}`)
    }
  }
  return m
}

/**
 * Splits one framed message off the front of `buf`: undefined while more
 * bytes are needed; `rest` is what followed it (the start of the data stream,
 * which must not be dropped).
 */
export function takeFrame (buf: Buffer): { body: Buffer, rest: Buffer } | undefined {
  const len = readVarint(buf, 0)
  if (len === undefined) {
    if (buf.length >= 10) throw new Error('bad length prefix')
    return undefined
  }
  if (len[0] > MAX_MESSAGE) throw new Error(`handshake message of ${len[0]} bytes exceeds ${MAX_MESSAGE}`)
  if (buf.length < len[1] + len[0]) return undefined
  return { body: buf.subarray(len[1], len[1] + len[0]), rest: buf.subarray(len[1] + len[0]) }
}

/**
 * Upstream's Discovery message (`/libp2p/tunnel-discovery/1.0.0`): type,
 * protocol ("MDNS" or "DHT", informative) and node_name, with the same field
 * numbers as Proxy's first three, so the same codec writes and reads it.
 */
export interface DiscoveryMessage { type: number, protocol?: string, nodeName?: string }

export function encodeDiscovery (m: DiscoveryMessage): Buffer {
  return encodeProxy({ type: m.type, protocol: m.protocol ?? '', nodeName: m.nodeName ?? '' })
}
