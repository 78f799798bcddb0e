/**
 * The first bytes of a resumable session (resumable.ts) on a carrier, pure
 * functions: `EMRS` and a type, then
 *   1 open:    session id (16)                       the opener, on the first carrier
 *   2 resume:  session id (16), bytes received (u64), MAC (16)   the opener, on a new one
 *   3 resumed: bytes received (u64), MAC (16)                   the other end's answer
 * MACs are HMAC-SHA256 (first 16 bytes) keyed from the PSK over everything
 * before them, the answer's also over the session id, so only cluster members
 * can move a session and an answer cannot be replayed for another one.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

export const SESSION_MAGIC = Buffer.from('EMRS')
export const SESSION_ID_BYTES = 16
export const OPEN_BYTES = 4 + 1 + SESSION_ID_BYTES
export const RESUME_BYTES = 4 + 1 + SESSION_ID_BYTES + 8 + 16
export const RESUMED_BYTES = 4 + 1 + 8 + 16

export function encodeOpen (id: Buffer): Buffer {
  return Buffer.concat([SESSION_MAGIC, Buffer.from([1]), id])
}

export function decodeOpen (b: Buffer): Buffer | undefined {
  return b.length === OPEN_BYTES && b.subarray(0, 4).equals(SESSION_MAGIC) && b[4] === 1 ? Buffer.from(b.subarray(5)) : undefined
}

export function encodeResume (key: Buffer, id: Buffer, received: number): Buffer {
  const head = Buffer.alloc(4 + 1 + SESSION_ID_BYTES + 8)
  SESSION_MAGIC.copy(head)
  head[4] = 2
  id.copy(head, 5)
  head.writeBigUInt64BE(BigInt(received), 5 + SESSION_ID_BYTES)
  return Buffer.concat([head, mac(key, head)])
}

export function decodeResume (key: Buffer, b: Buffer): { id: Buffer, received: number } | undefined {
  if (b.length !== RESUME_BYTES || !b.subarray(0, 4).equals(SESSION_MAGIC) || b[4] !== 2) return undefined
  const head = b.subarray(0, RESUME_BYTES - 16)
  if (!timingSafeEqual(mac(key, head), b.subarray(RESUME_BYTES - 16))) return undefined
  return { id: Buffer.from(b.subarray(5, 5 + SESSION_ID_BYTES)), received: Number(b.readBigUInt64BE(5 + SESSION_ID_BYTES)) }
}

export function encodeResumed (key: Buffer, id: Buffer, received: number): Buffer {
  const head = Buffer.alloc(4 + 1 + 8)
  SESSION_MAGIC.copy(head)
  head[4] = 3
  head.writeBigUInt64BE(BigInt(received), 5)
  return Buffer.concat([head, mac(key, Buffer.concat([head, id]))])
}

export function decodeResumed (key: Buffer, id: Buffer, b: Buffer): number | undefined {
  if (b.length !== RESUMED_BYTES || !b.subarray(0, 4).equals(SESSION_MAGIC) || b[4] !== 3) return undefined
  const head = b.subarray(0, RESUMED_BYTES - 16)
  if (!timingSafeEqual(mac(key, Buffer.concat([head, id])), b.subarray(RESUMED_BYTES - 16))) return undefined
  return Number(b.readBigUInt64BE(5))
}

function mac (key: Buffer, bytes: Buffer): Buffer {
  return createHmac('sha256', key).update(bytes).digest().subarray(0, 16)
}
