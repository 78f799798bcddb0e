/**
 * Pod packets on a byte stream between two agents (channel `cni-v2`). Each
 * frame is a 4-byte big-endian length, then the packet as the TUN device
 * gives it: a 10-byte virtio-net header and the IP packet. With the header
 * the kernel hands over and takes back segmentation-offloaded packets (one
 * TCP "super-packet" of up to 64 KiB instead of 45 of 1500 bytes), so the
 * agents move a few large packets, not many small ones. The header goes
 * across unchanged and the receiving kernel segments or checksums as it
 * says; the header of a packet from a peer is checked first (`checkHeader`).
 *
 * Upstream's `/libp2p/tunnel-cni/1.0.0` frames bare IP packets with a varint
 * length on a libp2p stream; that is a different channel.
 */
import { CniError, CNI_IO_FAILURE } from './errors.ts'

/** struct virtio_net_hdr (linux/virtio_net.h), without the merged-buffers count. */
export const VNET_HEADER = 10
/** Room a frame needs before its packet: the length. */
export const FRAME_HEADROOM = 4
/** The largest IP packet the kernel hands a TUN device with TSO (its GSO limit, 64 KiB). */
const MAX_IP_PACKET = 65_536
/** The largest packet a frame holds: header and IP packet. */
export const MAX_PACKET = VNET_HEADER + MAX_IP_PACKET
/** The smallest: header and an IPv4 header without options. */
export const MIN_PACKET = VNET_HEADER + 20

// virtio_net_hdr fields (little-endian: the legacy layout on x86-64 and arm64 hosts).
const NEEDS_CSUM = 0x01
const DATA_VALID = 0x02
const GSO_NONE = 0
const GSO_TCPV4 = 1
const GSO_ECN = 0x80

/** A virtio-net header that says nothing: a whole packet, checksums done. */
export const PLAIN_HEADER: Readonly<Buffer> = Buffer.alloc(VNET_HEADER)

/**
 * Why a peer's packet header is refused, or undefined when it is fine: only
 * what the device itself produces for IPv4 (no offload, or TCPv4
 * segmentation; checksum to fill in within the packet). The kernel checks
 * these headers too (they come from guests for virtio); this keeps the
 * check here as well, and explicit.
 */
export function checkHeader (packet: Buffer): string | undefined {
  const flags = packet[0] as number
  const gso = (packet[1] as number) & ~GSO_ECN
  if ((flags & ~(NEEDS_CSUM | DATA_VALID)) !== 0) return `flags ${flags}`
  if (gso !== GSO_NONE && gso !== GSO_TCPV4) return `offload type ${gso}`
  const ipLength = packet.byteLength - VNET_HEADER
  if (gso === GSO_TCPV4) {
    const segment = packet.readUInt16LE(4)
    if (segment === 0 || segment > ipLength) return `segment size ${segment}`
  }
  if ((flags & NEEDS_CSUM) !== 0) {
    const start = packet.readUInt16LE(6)
    const offset = packet.readUInt16LE(8)
    if (start + offset + 2 > ipLength) return `checksum at ${start}+${offset} beyond the packet`
  }
  return undefined
}

/** One packet as a frame (a copy; the device's reads come with room for the length instead, see `TunDevice.readLoop`). */
export function frame (packet: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADROOM + packet.byteLength)
  out.writeUInt32BE(packet.byteLength, 0)
  out.set(packet, FRAME_HEADROOM)
  return out
}

/**
 * Splits a stream into packets, whatever its chunks. A packet inside one
 * chunk is handed over as a view of it; one split across chunks (a 64 KiB
 * packet spans several TLS records) is gathered in a buffer the reader
 * keeps, so no chunk outlives its `data` event and nothing is allocated
 * per packet. Either way a packet is valid only until `onPacket` returns.
 * A length outside [MIN_PACKET, MAX_PACKET] is a broken or hostile peer:
 * `push` throws, and the caller closes the stream.
 */
export class FrameReader {
  /** Holds a frame split across chunks: its length field, then its packet. */
  #partial: Buffer | undefined
  #have = 0
  /** The packet's length once the length field is complete, else -1. */
  #need = -1

  push (chunk: Buffer, onPacket: (packet: Buffer) => void): void {
    let at = 0
    while (at < chunk.byteLength) {
      if (this.#have === 0) {
        // At a frame boundary: whole frames straight from the chunk.
        if (chunk.byteLength - at >= FRAME_HEADROOM) {
          const length = checkLength(chunk.readUInt32BE(at))
          if (chunk.byteLength - at - FRAME_HEADROOM >= length) {
            onPacket(chunk.subarray(at + FRAME_HEADROOM, at + FRAME_HEADROOM + length))
            at += FRAME_HEADROOM + length
            continue
          }
        }
      }
      // The rest of the chunk starts (or continues) a frame: gather it.
      this.#partial ??= Buffer.allocUnsafe(FRAME_HEADROOM + MAX_PACKET)
      const want = this.#need < 0 ? FRAME_HEADROOM - this.#have : FRAME_HEADROOM + this.#need - this.#have
      const n = Math.min(want, chunk.byteLength - at)
      chunk.copy(this.#partial, this.#have, at, at + n)
      this.#have += n
      at += n
      if (this.#need < 0) {
        if (this.#have < FRAME_HEADROOM) continue
        this.#need = checkLength(this.#partial.readUInt32BE(0))
      }
      if (this.#have === FRAME_HEADROOM + this.#need) {
        const packet = this.#partial.subarray(FRAME_HEADROOM, this.#have)
        this.#have = 0
        this.#need = -1
        onPacket(packet)
      }
    }
  }
}

function checkLength (length: number): number {
  if (length < MIN_PACKET || length > MAX_PACKET) throw new CniError(CNI_IO_FAILURE, `packet frame of ${length} bytes, outside ${MIN_PACKET}..${MAX_PACKET}`)
  return length
}
