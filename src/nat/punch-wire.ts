/**
 * The datagrams of punched paths, sent on the node's UDX socket beside UDX's
 * own packets (first byte 0xff) and STUN (first two bits 0): a 4-byte magic,
 * a type, the link's 8-byte id, the sender's node name, a body, and an
 * HMAC-SHA256 (first 16 bytes) keyed from the PSK, so only cluster members can
 * probe, open streams or keep a link alive. Pure functions; decoding never
 * throws.
 *
 *   probe / ack:  u32 nonce (an ack echoes the probe's)
 *   open:         u32 opener's stream id
 *   accept:       u32 opener's stream id, u32 acceptor's stream id
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'

export const PUNCH_MAGIC = Buffer.from('EMP1')
export const LINK_ID_BYTES = 8
const MAC_BYTES = 16
const MAX_NAME_BYTES = 253

export type PunchMessage =
  | { type: 'probe' | 'ack', link: Buffer, node: string, nonce: number }
  | { type: 'open', link: Buffer, node: string, stream: number }
  | { type: 'accept', link: Buffer, node: string, stream: number, accepted: number }

const TYPE_CODES = { probe: 1, ack: 2, open: 3, accept: 4 } as const
const TYPES = ['', 'probe', 'ack', 'open', 'accept'] as const

/** The key punch datagrams are MACed with: HKDF-SHA256 of the tunnel's 32-byte pnet key. */
export function punchKey (pnetKey: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', pnetKey, 'edgemesh-punch/1', 'datagrams', 32))
}

export function encodePunch (key: Uint8Array, m: PunchMessage): Buffer {
  const name = Buffer.from(m.node)
  if (name.length === 0 || name.length > MAX_NAME_BYTES) throw new RangeError(`node name of ${name.length} bytes`)
  if (m.link.length !== LINK_ID_BYTES) throw new RangeError(`link id of ${m.link.length} bytes`)
  const body = m.type === 'accept' ? 8 : 4
  const out = Buffer.allocUnsafe(4 + 1 + LINK_ID_BYTES + 1 + name.length + body + MAC_BYTES)
  let at = PUNCH_MAGIC.copy(out, 0)
  out[at++] = TYPE_CODES[m.type]
  at += m.link.copy(out, at)
  out[at++] = name.length
  at += name.copy(out, at)
  if ('nonce' in m) at = out.writeUInt32BE(m.nonce >>> 0, at)
  else at = out.writeUInt32BE(m.stream >>> 0, at)
  if ('accepted' in m) at = out.writeUInt32BE(m.accepted >>> 0, at)
  mac(key, out.subarray(0, at)).copy(out, at)
  return out
}

/** True when the datagram starts like one of ours (cheap: before any MAC is computed). */
export function isPunchDatagram (bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === PUNCH_MAGIC[0] && bytes[1] === PUNCH_MAGIC[1] && bytes[2] === PUNCH_MAGIC[2] && bytes[3] === PUNCH_MAGIC[3]
}

/** The message, or undefined for anything malformed or not MACed with `key`. */
export function decodePunch (key: Uint8Array, bytes: Uint8Array): PunchMessage | undefined {
  if (!isPunchDatagram(bytes) || bytes.length < 4 + 1 + LINK_ID_BYTES + 1 + 1 + 4 + MAC_BYTES) return undefined
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const type = TYPES[b[4] as number]
  if (type === undefined || type === '') return undefined
  const nameLength = b[4 + 1 + LINK_ID_BYTES] as number
  const nameAt = 4 + 1 + LINK_ID_BYTES + 1
  const bodyAt = nameAt + nameLength
  const macAt = bodyAt + (type === 'accept' ? 8 : 4)
  if (nameLength === 0 || b.length !== macAt + MAC_BYTES) return undefined
  if (!timingSafeEqual(mac(key, b.subarray(0, macAt)), b.subarray(macAt))) return undefined
  const link = Buffer.from(b.subarray(5, 5 + LINK_ID_BYTES))
  const node = b.toString('utf8', nameAt, bodyAt)
  const first = b.readUInt32BE(bodyAt)
  if (type === 'probe' || type === 'ack') return { type, link, node, nonce: first }
  if (type === 'open') return { type, link, node, stream: first }
  return { type, link, node, stream: first, accepted: b.readUInt32BE(bodyAt + 4) }
}

function mac (key: Uint8Array, bytes: Uint8Array): Buffer {
  return createHmac('sha256', key).update(bytes).digest().subarray(0, MAC_BYTES)
}
