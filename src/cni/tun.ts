/**
 * The routing plane's packet device: a TUN interface (`edge_tun0`, upstream's
 * name) that the kernel routes other nodes' pod blocks to. Opening one takes
 * `ioctl(TUNSETIFF)`, which Node cannot call: `koffi` (a well-kept FFI with
 * prebuilt binaries for linux x64 and arm64, no compiler at install) calls
 * libc's. Packets are then read and written on the file descriptor: reads on
 * libuv's thread pool (one at a time, so packets keep their order), writes
 * on the event loop (a TUN write hands the packet to the kernel and returns).
 */
import { closeSync, openSync, read, writeSync, constants } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { CniError, CNI_NETWORK_SETUP } from './errors.ts'

const TUNSETIFF = 0x400454ca
const IFF_TUN = 0x0001
/** No 4-byte packet-information header before each packet. */
const IFF_NO_PI = 0x1000
const IFNAMSIZ = 16
/** struct ifreq: the name, then a union whose first member is the flags (short). */
const IFREQ_SIZE = 40

type Ioctl = (fd: number, request: number, arg: Buffer) => number
let libc: { ioctl: Ioctl, errno: () => number } | undefined

async function loadLibc (): Promise<{ ioctl: Ioctl, errno: () => number }> {
  if (libc !== undefined) return libc
  const koffi = (await import('koffi')).default
  const ioctl = koffi.load('libc.so.6').func('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)') as Ioctl
  libc = { ioctl, errno: () => koffi.errno() }
  return libc
}

/** `EBUSY` for 16: the name of an errno value. */
function errnoName (value: number): string {
  return Object.entries(osConstants.errno).find(([, v]) => v === value)?.[0] ?? `errno ${value}`
}

export class TunDevice {
  readonly name: string
  readonly #fd: number
  #closed = false
  readonly #buf = Buffer.allocUnsafe(65_536)

  private constructor (name: string, fd: number) {
    this.name = name
    this.#fd = fd
  }

  /** Opens (creating if needed) the TUN interface `name`; its addresses, MTU and state are the caller's (`ip`). */
  static async open (name: string): Promise<TunDevice> {
    if (Buffer.byteLength(name) >= IFNAMSIZ) throw new CniError(CNI_NETWORK_SETUP, `TUN name ${name} is longer than ${IFNAMSIZ - 1} bytes`)
    const c = await loadLibc()
    let fd: number
    try {
      fd = openSync('/dev/net/tun', constants.O_RDWR)
    } catch (err) {
      throw new CniError(CNI_NETWORK_SETUP, `cannot open /dev/net/tun (the agent needs CAP_NET_ADMIN and the tun module): ${(err as Error).message}`, undefined, { cause: err })
    }
    const ifr = Buffer.alloc(IFREQ_SIZE)
    ifr.write(name, 0, 'latin1')
    ifr.writeUInt16LE(IFF_TUN | IFF_NO_PI, IFNAMSIZ)
    if (c.ioctl(fd, TUNSETIFF, ifr) !== 0) {
      const code = errnoName(c.errno())
      closeSync(fd)
      const why = code === 'EBUSY' ? 'another process holds it (a second agent, or upstream\'s edge CNI)' : code === 'EPERM' ? 'the agent needs CAP_NET_ADMIN' : 'a link of that name that is not a TUN device?'
      throw new CniError(CNI_NETWORK_SETUP, `cannot open TUN device ${name}: ${code}: ${why}`)
    }
    return new TunDevice(name, fd)
  }

  /**
   * Reads packets until the device goes away (the caller deletes the link
   * to stop: that wakes a read blocked in the kernel) or `close()`.
   */
  readLoop (onPacket: (packet: Buffer) => void, onEnd: (err?: Error) => void): void {
    const next = (): void => {
      if (this.#closed) { onEnd(); return }
      read(this.#fd, this.#buf, 0, this.#buf.byteLength, null, (err, n) => {
        if (err !== null || n === 0 || this.#closed) { onEnd(this.#closed ? undefined : err ?? undefined); return }
        // Copied: the read buffer is reused for the next packet at once.
        onPacket(Buffer.from(this.#buf.subarray(0, n)))
        next()
      })
    }
    next()
  }

  /** Hands one packet to the kernel; false when it refused it (the device is going away). */
  write (packet: Uint8Array): boolean {
    if (this.#closed) return false
    try {
      return writeSync(this.#fd, packet) === packet.byteLength
    } catch {
      return false
    }
  }

  /** Closes the descriptor; a read still blocked returns once the link is deleted. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    try { closeSync(this.#fd) } catch {}
  }
}
