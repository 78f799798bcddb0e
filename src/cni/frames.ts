/**
 * IP packets on a byte stream between two agents: each packet as a 2-byte
 * big-endian length and the packet (upstream's `/libp2p/tunnel-cni/1.0.0`
 * frames its packets on a libp2p stream the same way, with a varint).
 */
import { CniError, CNI_IO_FAILURE } from './errors.ts'

/** The largest packet a frame holds: an IPv4 packet's total length is 16 bits. */
export const MAX_PACKET = 0xffff
/** The smallest IPv4 packet: a header without options. */
export const MIN_PACKET = 20

/** One packet as a frame. */
export function frame (packet: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(2 + packet.byteLength)
  out.writeUInt16BE(packet.byteLength, 0)
  out.set(packet, 2)
  return out
}

/**
 * Splits a stream into packets, whatever its chunks. A frame shorter than an
 * IPv4 header is a broken or hostile peer: `push` throws, and the caller
 * closes the stream.
 */
export class FrameReader {
  #pending: Buffer | undefined

  push (chunk: Buffer, onPacket: (packet: Buffer) => void): void {
    let buf = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk])
    this.#pending = undefined
    while (buf.byteLength >= 2) {
      const length = buf.readUInt16BE(0)
      if (length < MIN_PACKET) throw new CniError(CNI_IO_FAILURE, `packet frame of ${length} bytes, shorter than an IPv4 header`)
      if (buf.byteLength < 2 + length) break
      onPacket(buf.subarray(2, 2 + length))
      buf = buf.subarray(2 + length)
    }
    // What is left is the start of the next frame; copied so the chunk it came in can be freed.
    if (buf.byteLength > 0) this.#pending = Buffer.from(buf)
  }
}
