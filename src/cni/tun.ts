/**
 * The routing plane's packet device: a TUN interface (`edge_tun0`, upstream's
 * name) that the kernel routes other nodes' pod blocks to. Opening one takes
 * `ioctl(TUNSETIFF)`, which Node cannot call: `koffi` (a well-kept FFI with
 * prebuilt binaries for linux x64 and arm64, no compiler at install) calls
 * libc's.
 *
 * Reading: Node has no way to wait on a character device. Reading it with
 * `fs.read` (libuv's thread pool), one packet per round trip, gave 2-3k
 * packets a second beside a busy event loop: pod-to-pod TCP at 3-5 MB/s. A
 * worker thread reading in batches gave 51 MB/s but cost 13 MB of RSS (its
 * JavaScript isolate). Here a pool thread waits in `poll(2)` (koffi's async
 * call: no JavaScript on it), then the event loop reads every queued packet
 * from the non-blocking descriptor: one thread round trip per batch.
 * Writing: on the event loop, a TUN write hands the packet to the kernel and
 * returns.
 *
 * Offloads: the device is opened with a virtio-net header on each packet
 * and TCPv4 segmentation and checksum offload on, as Tailscale and
 * wireguard-go do. A pod's TCP sends 64 KiB segments over its veth; the
 * kernel forwards them to the device whole, and the peer's kernel splits
 * them (or hands them whole to its pod): per 64 KiB, one read, one frame
 * and one write instead of 45 of each. Pod-to-pod TCP went from 66 MB/s
 * (1500-byte packets) to the figures in docs/benchmarks.md.
 */
import { closeSync, openSync, readSync, writeSync, constants } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { CniError, CNI_NETWORK_SETUP } from './errors.ts'

const TUNSETIFF = 0x400454ca
const IFF_TUN = 0x0001
/** No 4-byte packet-information header before each packet. */
const IFF_NO_PI = 0x1000
/** A struct virtio_net_hdr before each packet, both ways (offload metadata). */
const IFF_VNET_HDR = 0x4000
/** _IOW('T', 208, unsigned int): which offloads the reader takes; the argument is the value itself. */
const TUNSETOFFLOAD = 0x400454d0
const TUN_F_CSUM = 0x01
const TUN_F_TSO4 = 0x02
const TUN_F_TSO_ECN = 0x08
const IFNAMSIZ = 16
/** struct ifreq: the name, then a union whose first member is the flags (short). */
const IFREQ_SIZE = 40

type Ioctl = (fd: number, request: number, arg: Buffer) => number
type IoctlValue = (fd: number, request: number, arg: number) => number
/** `poll(2)` run on a thread of libuv's pool (koffi's async call): no JavaScript there. */
type AsyncPoll = (fds: Buffer, nfds: number, timeoutMs: number, done: (err: unknown, ready: number) => void) => void
interface Libc { ioctl: Ioctl, ioctlValue: IoctlValue, poll: AsyncPoll, errno: () => number }
let libc: Libc | undefined

async function loadLibc (): Promise<Libc> {
  if (libc !== undefined) return libc
  const koffi = (await import('koffi')).default
  const lib = koffi.load('libc.so.6')
  const ioctl = lib.func('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)') as Ioctl
  const ioctlValue = lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']) as IoctlValue
  const poll = lib.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)') as unknown as { async: AsyncPoll }
  libc = { ioctl, ioctlValue, poll: (...args) => { poll.async(...args) }, errno: () => koffi.errno() }
  return libc
}

const POLLIN = 0x1
/** POLLERR, POLLHUP, POLLNVAL: the device went away. */
const POLL_GONE = 0x38
/** Packets read per wake-up at most, so one busy device cannot hold the event loop. */
const BATCH = 64
/** Reads land in slabs of this size, each packet after the room its caller asked for: no copy after the read. */
const SLAB = 256 * 1024
/** The largest read: a virtio-net header and a 64 KiB segmentation-offloaded packet, and slack to see a longer one as too long. */
const MAX_READ = 10 + 65_536 + 64

/** `EBUSY` for 16: the name of an errno value. */
function errnoName (value: number): string {
  return Object.entries(osConstants.errno).find(([, v]) => v === value)?.[0] ?? `errno ${value}`
}

export class TunDevice {
  readonly name: string
  readonly #fd: number
  readonly #poll: AsyncPoll
  #closed = false
  #reading: Promise<void> | undefined
  #slab = Buffer.allocUnsafe(SLAB)
  #slabUsed = 0

  private constructor (name: string, fd: number, poll: AsyncPoll) {
    this.name = name
    this.#fd = fd
    this.#poll = poll
  }

  /** Opens (creating if needed) the TUN interface `name`; its addresses, MTU and state are the caller's (`ip`). */
  static async open (name: string): Promise<TunDevice> {
    if (Buffer.byteLength(name) >= IFNAMSIZ) throw new CniError(CNI_NETWORK_SETUP, `TUN name ${name} is longer than ${IFNAMSIZ - 1} bytes`)
    const c = await loadLibc()
    let fd: number
    try {
      fd = openSync('/dev/net/tun', constants.O_RDWR | constants.O_NONBLOCK)
    } catch (err) {
      throw new CniError(CNI_NETWORK_SETUP, `cannot open /dev/net/tun (the agent needs CAP_NET_ADMIN and the tun module): ${(err as Error).message}`, undefined, { cause: err })
    }
    const ifr = Buffer.alloc(IFREQ_SIZE)
    ifr.write(name, 0, 'latin1')
    ifr.writeUInt16LE(IFF_TUN | IFF_NO_PI | IFF_VNET_HDR, IFNAMSIZ)
    if (c.ioctl(fd, TUNSETIFF, ifr) !== 0) {
      const code = errnoName(c.errno())
      closeSync(fd)
      const why = code === 'EBUSY' ? 'another process holds it (a second agent, or upstream\'s edge CNI)' : code === 'EPERM' ? 'the agent needs CAP_NET_ADMIN' : 'a link of that name that is not a TUN device?'
      throw new CniError(CNI_NETWORK_SETUP, `cannot open TUN device ${name}: ${code}: ${why}`)
    }
    if (c.ioctlValue(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN) !== 0) {
      const code = errnoName(c.errno())
      closeSync(fd)
      throw new CniError(CNI_NETWORK_SETUP, `cannot turn on TCP segmentation offload on TUN device ${name}: ${code}`)
    }
    return new TunDevice(name, fd, c.poll)
  }

  /**
   * Reads packets until the device goes away (the caller deletes the link to
   * stop) or `close()`: a thread of the pool waits in `poll(2)`, then the
   * event loop reads every queued packet (up to BATCH) without blocking.
   * Each packet (virtio-net header, then the IP packet) comes after
   * `headroom` bytes the caller may fill (a frame's length), in memory of
   * its own.
   */
  readLoop (onPacket: (withHeadroom: Buffer) => void, onEnd: (err?: Error) => void, headroom = 0): void {
    const pfd = Buffer.alloc(8)
    pfd.writeInt32LE(this.#fd, 0)
    pfd.writeInt16LE(POLLIN, 4)
    this.#reading = new Promise(resolve => {
      const end = (err?: Error): void => { resolve(); onEnd(this.#closed ? undefined : err) }
      const wait = (): void => {
        pfd.writeInt16LE(0, 6)
        // 500 ms: a close() is seen within that even when no packet comes.
        this.#poll(pfd, 1, 500, (err, ready) => {
          if (this.#closed) { end(); return }
          if (err !== null && err !== undefined) { end(err as Error); return }
          if (ready < 0 || (pfd.readInt16LE(6) & POLL_GONE) !== 0) { end(new Error(`device ${this.name} is gone`)); return }
          // ready 0: the poll timed out, nothing to read.
          for (let i = 0; i < (ready > 0 ? BATCH : 0); i++) {
            if (SLAB - this.#slabUsed < headroom + MAX_READ) {
              this.#slab = Buffer.allocUnsafe(SLAB)
              this.#slabUsed = 0
            }
            const at = this.#slabUsed + headroom
            let n = 0
            try {
              n = readSync(this.#fd, this.#slab, at, MAX_READ, null)
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break
              end(e as Error)
              return
            }
            if (n <= 0) break
            // A read that filled MAX_READ was cut short: not a packet the device should give.
            if (n === MAX_READ) continue
            onPacket(this.#slab.subarray(this.#slabUsed, at + n))
            // The next packet starts 8-byte aligned after this one.
            this.#slabUsed = (at + n + 7) & ~7
          }
          wait()
        })
      }
      wait()
    })
  }

  /** Hands one packet (virtio-net header, then the IP packet) to the kernel; false when it refused it (a bad header, or the device is going away). */
  write (packet: Uint8Array): boolean {
    if (this.#closed) return false
    try {
      return writeSync(this.#fd, packet) === packet.byteLength
    } catch {
      return false
    }
  }

  /** Stops reading (within the poll's 500 ms) and closes the descriptor. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#reading
    try { closeSync(this.#fd) } catch {}
  }
}
