/**
 * TCP simultaneous open, for a pair where one site blocks UDP. Both agents
 * connect to each other's public TCP endpoint at once, each from the local
 * port whose mapping a relay reflected. A NAT drops the first SYN that
 * arrives before its own node's SYN has gone out; the kernel sends it again
 * (after 1 s), or the other side's SYN meets a socket still connecting, and
 * the two SYNs make one connection (RFC 9293 §3.5).
 *
 * When one side's NAT picks a new random port per connection, it connects
 * from many local ports at once (`extraSockets`) while the other sends SYNs
 * from its one port to random ports of its public address (`sprayHost`): the
 * birthday probing of punch.ts, with SYNs.
 *
 * Every connection that opens is proven the way a UDP probe is: the
 * controlling side sends a MACed probe, the other side answers with an ack
 * (punch-wire.ts, each framed with a u16 length). The controlling side names
 * the probe over the rendezvous, and both keep that connection.
 */
import { randomInt } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { readExactly } from '../net/socket-io.ts'
import { decodePunch, encodePunch } from './punch-wire.ts'

export interface TcpEndpoint { host: string, port: number }

export interface TcpPunchInit {
  key: Buffer
  link: Buffer
  me: string
  peer: string
  controlling: boolean
  /** The local port the relays saw mapped; the plain connects and the spray go from it. */
  localPort: number
  /** The peer's endpoints, each connected to from `localPort`. */
  targets: TcpEndpoint[]
  /** Connections from as many new local ports to the first target (this side's NAT maps at random). */
  extraSockets: number
  /** SYNs from `localPort` to random ports of this address (the peer's NAT maps at random). */
  sprayHost?: string
  /** @default 2048 */
  sprayCount?: number
}

export interface TcpPunched { socket: Socket, nonce: number, rttMs: number }

export interface TcpPunchAttempt {
  /** The first connection whose probe was answered (controlling side). */
  proven: Promise<TcpPunched | undefined>
  /** The connection a probe with this nonce came over (the other side). */
  answered: (nonce: number) => Omit<TcpPunched, 'rttMs'> | undefined
  /** Connections opened. */
  opened: () => number
  /** Closes every connection but `keep`. */
  finish: (keep?: Socket) => void
}

const RETRY_MS = 100
const SPRAY_PER_MS = 8
const FRAME_TIMEOUT_MS = 2000
/** A probe or ack is under 300 bytes. */
const MAX_FRAME_BYTES = 512

export function startTcpPunch (init: TcpPunchInit): TcpPunchAttempt {
  const sockets = new Set<Socket>()
  const answered = new Map<number, Socket>()
  let finished = false
  let opened = 0
  let resolveProven: (p: TcpPunched | undefined) => void = () => {}
  const proven = new Promise<TcpPunched | undefined>(resolve => { resolveProven = resolve })
  const timers = new Set<NodeJS.Timeout>()
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => { timers.delete(t); if (!finished) fn() }, ms)
    timers.add(t)
  }

  const onOpen = (socket: Socket): void => {
    opened++
    socket.setNoDelay(true)
    if (init.controlling) {
      const nonce = randomInt(2 ** 32 - 1)
      const sent = Date.now()
      socket.write(frame(encodePunch(init.key, { type: 'probe', link: init.link, node: init.me, nonce })))
      readFrame(socket).then(bytes => {
        const m = decodePunch(init.key, bytes)
        if (m?.type !== 'ack' || m.nonce !== nonce || !m.link.equals(init.link) || m.node !== init.peer) throw new Error('not the peer')
        resolveProven({ socket, nonce, rttMs: Date.now() - sent })
      }).catch(() => { drop(socket) })
    } else {
      readFrame(socket).then(bytes => {
        const m = decodePunch(init.key, bytes)
        if (m?.type !== 'probe' || !m.link.equals(init.link) || m.node !== init.peer) throw new Error('not the peer')
        answered.set(m.nonce, socket)
        socket.write(frame(encodePunch(init.key, { type: 'ack', link: init.link, node: init.me, nonce: m.nonce })))
      }).catch(() => { drop(socket) })
    }
  }

  const drop = (socket: Socket): void => {
    sockets.delete(socket)
    socket.destroy()
  }

  /** A connect that is tried again while refused (the peer's socket was not there yet). */
  const dial = (target: TcpEndpoint, localPort: number | undefined, again: boolean): void => {
    if (finished) return
    const socket = connect({ host: target.host, port: target.port, ...(localPort === undefined ? {} : { localPort }) })
    sockets.add(socket)
    socket.once('connect', () => { onOpen(socket) })
    socket.on('error', () => {
      drop(socket)
      if (again) later(RETRY_MS, () => { dial(target, localPort, again) })
    })
  }

  for (const t of init.targets) dial(t, init.localPort, true)
  const first = init.targets[0]
  if (first !== undefined) for (let i = 0; i < init.extraSockets; i++) dial(first, undefined, false)
  if (init.sprayHost !== undefined) {
    const host = init.sprayHost
    const count = init.sprayCount ?? 2048
    for (let sent = 0; sent < count; sent += SPRAY_PER_MS) {
      later(sent / SPRAY_PER_MS, () => {
        for (let i = 0; i < SPRAY_PER_MS; i++) dial({ host, port: randomInt(1024, 65_536) }, init.localPort, false)
      })
    }
  }

  return {
    proven,
    answered: nonce => {
      const socket = answered.get(nonce)
      return socket === undefined ? undefined : { socket, nonce }
    },
    opened: () => opened,
    finish: keep => {
      finished = true
      for (const t of timers) clearTimeout(t)
      timers.clear()
      for (const s of sockets) if (s !== keep) s.destroy()
      sockets.clear()
      resolveProven(undefined)
    }
  }
}

function frame (bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + bytes.length)
  out.writeUInt16BE(bytes.length, 0)
  bytes.copy(out, 2)
  return out
}

/** One length-framed message; what follows it is put back for the stream's next reader. */
async function readFrame (socket: Socket): Promise<Buffer> {
  const deadline = Date.now() + FRAME_TIMEOUT_MS
  const n = (await readExactly(socket, 2, FRAME_TIMEOUT_MS)).readUInt16BE(0)
  if (n === 0 || n > MAX_FRAME_BYTES) throw new Error(`a frame of ${n} bytes`)
  return await readExactly(socket, n, Math.max(1, deadline - Date.now()))
}
