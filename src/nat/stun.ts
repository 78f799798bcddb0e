/**
 * The few STUN messages NAT discovery needs (RFC 5389 Binding, RFC 5780's
 * CHANGE-REQUEST and PADDING), so that any STUN client can ask a relay for
 * its mapped address. Pure: parsing never throws; anything that is not a
 * well-formed Binding message is `undefined`.
 */
import { randomBytes } from 'node:crypto'
import { ipv4ToNumber, numberToIpv4 } from '../net/ipv4.ts'

const MAGIC = 0x2112a442
const HEADER = 20
const BINDING_REQUEST = 0x0001
const BINDING_SUCCESS = 0x0101
const ATTR_XOR_MAPPED_ADDRESS = 0x0020
const ATTR_CHANGE_REQUEST = 0x0003
const ATTR_PADDING = 0x0026
const CHANGE_PORT = 0x02

/**
 * A Binding success for IPv4 is 32 bytes: a request must be at least as long
 * to be answered, so a spoofed source gets no more bytes back than were sent.
 */
export const MIN_REQUEST_BYTES = 32
/** Larger requests are not STUN binding requests of ours or anyone's. */
export const MAX_REQUEST_BYTES = 548

export interface BindingRequest {
  transactionId: Buffer
  /** Answer from another port of the relay (RFC 5780 "change port"): tells port-dependent filtering apart. */
  changePort: boolean
}

export interface BindingResponse {
  transactionId: Buffer
  /** The address and port the relay saw the request come from. */
  mapped: { address: string, port: number }
}

function header (type: number, length: number, transactionId: Buffer): Buffer {
  const b = Buffer.alloc(HEADER)
  b.writeUInt16BE(type, 0)
  b.writeUInt16BE(length, 2)
  b.writeUInt32BE(MAGIC, 4)
  transactionId.copy(b, 8)
  return b
}

function attribute (type: number, value: Buffer): Buffer {
  const pad = (4 - (value.length % 4)) % 4
  const b = Buffer.alloc(4 + value.length + pad)
  b.writeUInt16BE(type, 0)
  b.writeUInt16BE(value.length, 2)
  value.copy(b, 4)
  return b
}

/** A Binding request padded to MIN_REQUEST_BYTES. */
export function encodeRequest (changePort = false, transactionId: Buffer = randomBytes(12)): { bytes: Buffer, transactionId: Buffer } {
  const change = changePort ? [attribute(ATTR_CHANGE_REQUEST, Buffer.from([0, 0, 0, CHANGE_PORT]))] : []
  const used = HEADER + change.reduce((n, a) => n + a.length, 0)
  const padding = attribute(ATTR_PADDING, Buffer.alloc(Math.max(0, MIN_REQUEST_BYTES - used - 4)))
  const attrs = Buffer.concat([...change, padding])
  return { bytes: Buffer.concat([header(BINDING_REQUEST, attrs.length, transactionId), attrs]), transactionId }
}

/** The attributes of a well-formed STUN message of `type`, or undefined. */
function parse (msg: Buffer, type: number): { transactionId: Buffer, attrs: Map<number, Buffer> } | undefined {
  if (msg.length < HEADER || msg.readUInt16BE(0) !== type || msg.readUInt32BE(4) !== MAGIC) return undefined
  const length = msg.readUInt16BE(2)
  if (length % 4 !== 0 || HEADER + length !== msg.length) return undefined
  const attrs = new Map<number, Buffer>()
  for (let at = HEADER; at < msg.length;) {
    if (at + 4 > msg.length) return undefined
    const t = msg.readUInt16BE(at)
    const len = msg.readUInt16BE(at + 2)
    if (at + 4 + len > msg.length) return undefined
    if (!attrs.has(t)) attrs.set(t, msg.subarray(at + 4, at + 4 + len))
    at += 4 + len + ((4 - (len % 4)) % 4)
  }
  return { transactionId: Buffer.from(msg.subarray(8, HEADER)), attrs }
}

export function decodeRequest (msg: Buffer): BindingRequest | undefined {
  const m = parse(msg, BINDING_REQUEST)
  if (m === undefined) return undefined
  const change = m.attrs.get(ATTR_CHANGE_REQUEST)
  return { transactionId: m.transactionId, changePort: change !== undefined && change.length === 4 && ((change[3] ?? 0) & CHANGE_PORT) !== 0 }
}

/** A Binding success telling an IPv4 client where it came from (XOR-MAPPED-ADDRESS). */
export function encodeResponse (transactionId: Buffer, mapped: { address: string, port: number }): Buffer {
  const v = Buffer.alloc(8)
  v.writeUInt8(0x01, 1)
  v.writeUInt16BE(mapped.port ^ (MAGIC >>> 16), 2)
  v.writeUInt32BE(((ipv4ToNumber(mapped.address) ?? 0) ^ MAGIC) >>> 0, 4)
  const attr = attribute(ATTR_XOR_MAPPED_ADDRESS, v)
  return Buffer.concat([header(BINDING_SUCCESS, attr.length, transactionId), attr])
}

export function decodeResponse (msg: Buffer): BindingResponse | undefined {
  const m = parse(msg, BINDING_SUCCESS)
  const v = m?.attrs.get(ATTR_XOR_MAPPED_ADDRESS)
  if (m === undefined || v === undefined || v.length !== 8 || v[1] !== 0x01) return undefined
  const port = v.readUInt16BE(2) ^ (MAGIC >>> 16)
  return { transactionId: m.transactionId, mapped: { address: numberToIpv4((v.readUInt32BE(4) ^ MAGIC) >>> 0), port } }
}
