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
 * JavaScript isolate). A pool thread waiting in `poll(2)` held that thread
 * and added a thread hop to every wake-up (about 1 ms to a pod-to-pod round
 * trip). Here the descriptor is watched by the event loop itself: a libuv
 * `uv_poll_t` (Node exports libuv's functions to addons; koffi calls them),
 * whose callback only schedules the reading for the same turn of the loop
 * (`setImmediate`, so Node runs its tick queue after it as after any I/O);
 * the reading takes every queued packet from the non-blocking descriptor.
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
/** libuv's handle type number of uv_poll_t, and its readable event. */
const UV_POLL = 8
const UV_READABLE = 1

type Pointer = unknown
interface Native {
  ioctl: (fd: number, request: number, arg: Buffer) => number
  ioctlValue: (fd: number, request: number, arg: number) => number
  errno: () => number
  /** A uv_poll_t on the default loop watching `fd` for reading; `onReadable` runs on the event loop. */
  watch: (fd: number, onReadable: (status: number) => void) => { stop: () => Promise<void> }
}
let native: Native | undefined

async function loadNative (): Promise<Native> {
  if (native !== undefined) return native
  const koffi = (await import('koffi')).default
  const lib = koffi.load('libc.so.6')
  // The process itself: Node's binary exports libuv for addons.
  const node = koffi.load(null as unknown as string)
  const pollCb = koffi.proto('void edgemesh_uv_poll_cb(void *handle, int status, int events)')
  const closeCb = koffi.proto('void edgemesh_uv_close_cb(void *handle)')
  const uv = {
    defaultLoop: node.func('void *uv_default_loop(void)') as () => Pointer,
    handleSize: node.func('size_t uv_handle_size(int type)') as (type: number) => number,
    pollInit: node.func('int uv_poll_init(void *loop, void *handle, int fd)') as (loop: Pointer, handle: Pointer, fd: number) => number,
    pollStart: node.func('int uv_poll_start(void *handle, int events, edgemesh_uv_poll_cb *cb)') as (handle: Pointer, events: number, cb: Pointer) => number,
    pollStop: node.func('int uv_poll_stop(void *handle)') as (handle: Pointer) => number,
    close: node.func('void uv_close(void *handle, edgemesh_uv_close_cb *cb)') as (handle: Pointer, cb: Pointer) => void
  }
  const watch: Native['watch'] = (fd, onReadable) => {
    const handle = koffi.alloc('uint8_t', uv.handleSize(UV_POLL))
    const cb = koffi.register((_h: Pointer, status: number) => { onReadable(status) }, koffi.pointer(pollCb))
    const fail = (what: string, code: number): never => {
      koffi.unregister(cb)
      koffi.free(handle)
      throw new CniError(CNI_NETWORK_SETUP, `cannot watch the TUN device: ${what} returned ${code}`)
    }
    const init = uv.pollInit(uv.defaultLoop(), handle, fd)
    if (init !== 0) fail('uv_poll_init', init)
    const start = uv.pollStart(handle, UV_READABLE, cb)
    if (start !== 0) fail('uv_poll_start', start)
    let stopped: Promise<void> | undefined
    return {
      stop: async () => {
        stopped ??= new Promise<void>(resolve => {
          uv.pollStop(handle)
          // The handle's memory and the callback stay until libuv is done with them.
          const done = koffi.register(() => {
            koffi.unregister(cb)
            setImmediate(() => { koffi.unregister(done); koffi.free(handle) })
            resolve()
          }, koffi.pointer(closeCb))
          uv.close(handle, done)
        })
        await stopped
      }
    }
  }
  native = {
    ioctl: lib.func('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)'),
    ioctlValue: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']),
    errno: () => koffi.errno(),
    watch
  }
  return native
}

/** Packets read per turn of the event loop at most, so one busy device cannot hold it; the rest are read in the next turn. */
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
  readonly #native: Native
  #closed = false
  #watcher: { stop: () => Promise<void> } | undefined
  #slab = Buffer.allocUnsafe(SLAB)
  #slabUsed = 0

  private constructor (name: string, fd: number, n: Native) {
    this.name = name
    this.#fd = fd
    this.#native = n
  }

  /** Opens (creating if needed) the TUN interface `name`; its addresses, MTU and state are the caller's (`ip`). */
  static async open (name: string): Promise<TunDevice> {
    if (Buffer.byteLength(name) >= IFNAMSIZ) throw new CniError(CNI_NETWORK_SETUP, `TUN name ${name} is longer than ${IFNAMSIZ - 1} bytes`)
    const c = await loadNative()
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
    return new TunDevice(name, fd, c)
  }

  /**
   * Reads packets until the device goes away (the caller deletes the link to
   * stop) or `close()`: when the event loop sees the descriptor readable, the
   * queued packets (up to BATCH a turn) are read without blocking. Each
   * packet (virtio-net header, then the IP packet) comes after `headroom`
   * bytes the caller may fill (a frame's length), in memory of its own.
   */
  readLoop (onPacket: (withHeadroom: Buffer) => void, onEnd: (err?: Error) => void, headroom = 0): void {
    let ended = false
    let scheduled = false
    const end = (err?: Error): void => {
      if (ended) return
      ended = true
      // An error state stays readable: stop watching, or the loop spins.
      this.#watcher?.stop().catch(() => {})
      onEnd(this.#closed ? undefined : err)
    }
    const drain = (): void => {
      scheduled = false
      if (this.#closed || ended) return
      for (let i = 0; i < BATCH; i++) {
        if (SLAB - this.#slabUsed < headroom + MAX_READ) {
          this.#slab = Buffer.allocUnsafe(SLAB)
          this.#slabUsed = 0
        }
        const at = this.#slabUsed + headroom
        let n = 0
        try {
          n = readSync(this.#fd, this.#slab, at, MAX_READ, null)
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return
          end(e as Error)
          return
        }
        if (n <= 0) return
        // A read that filled MAX_READ was cut short: not a packet the device should give.
        if (n === MAX_READ) continue
        onPacket(this.#slab.subarray(this.#slabUsed, at + n))
        // The next packet starts 8-byte aligned after this one.
        this.#slabUsed = (at + n + 7) & ~7
      }
    }
    this.#watcher = this.#native.watch(this.#fd, status => {
      // libuv's error (UV_EBADF) when the device went away (POLLERR).
      if (status < 0) { end(new Error(`device ${this.name} is gone`)); return }
      // Read in the same turn of the loop, but outside libuv's callback, so Node runs its tick queue after it.
      if (!scheduled) { scheduled = true; setImmediate(drain) }
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

  /** Stops reading and closes the descriptor (after the event loop let go of it). */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#watcher?.stop()
    try { closeSync(this.#fd) } catch {}
  }
}
