/**
 * One hole-punching attempt towards one peer, ICE-style: probes go to every
 * candidate of the peer at once, every probe that arrives is answered (and its
 * source probed in turn, as a peer-reflexive candidate), and the first answer
 * to one of our probes proves a path both ways.
 *
 * When one side maps every destination to a new port (symmetric) and the
 * other keeps one mapping (cone), plain probes fail: the cone's filter admits
 * only the ports it sent to, and the symmetric side's port is unknown. Then
 * the symmetric side probes from many extra sockets (each a new port on its
 * NAT) and the cone side sprays probes at random ports of the symmetric
 * side's public address; a port both picked opens the path (birthday
 * probing: 256 sockets × 2,048 ports finds one with probability 1 − e^−8).
 */
import { randomInt } from 'node:crypto'
import { decodePunch, encodePunch, isPunchDatagram } from './punch-wire.ts'
import type { Udx, UdxAddress, UdxSocket } from './udx.ts'

export interface PunchPlan {
  /** The link's id, shared by both sides through the rendezvous. */
  link: Buffer
  me: string
  peer: string
  key: Buffer
  /** The node's own socket: its mapping is the one the relays saw. */
  socket: UdxSocket
  /** The peer's candidates (LAN and mapped addresses). */
  candidates: UdxAddress[]
  /** Extra sockets to probe from (this side maps per destination, the peer does not). @default 0 */
  extraSockets?: number
  /** Public addresses of a peer that maps per destination: probes go to random ports there. */
  sprayHosts?: string[]
  /** Probes sprayed per host. @default 2048 */
  sprayCount?: number
  /** Sprayed probes per millisecond at most (a burst of port probes looks like a scan to some networks). @default 8 */
  sprayPerMs?: number
}

export interface PunchedPath {
  socket: UdxSocket
  remote: UdxAddress
  rttMs: number
  /** The probe whose answer proved it: the controlling side names it, so both sides pick the same pair of mappings. */
  nonce: number
}

export interface PunchAttempt {
  /** The first proven path, or undefined when `finish` came first. */
  readonly proven: Promise<PunchedPath | undefined>
  /** Probes sent so far (for metrics and tests). */
  probesSent (): number
  /**
   * The path a probe of the peer's came over, by its nonce (the peer proved it with our answer):
   * the socket that answered and the address the probe came from.
   */
  answered (nonce: number): Omit<PunchedPath, 'rttMs'> | undefined
  /** Stops probing and closes the extra sockets but `keep` (the socket of the path chosen). */
  finish (keep?: UdxSocket): Promise<void>
}

const PROBE_EVERY_MS = 50
/** Extra sockets probe less often after this long: their mappings are open by then. */
const EXTRA_FAST_MS = 2000
const MAX_TARGETS_PER_SOCKET = 32

export function startPunch (udx: Udx, plan: PunchPlan): PunchAttempt {
  const sockets: UdxSocket[] = [plan.socket]
  for (let i = 0; i < (plan.extraSockets ?? 0); i++) {
    const s = udx.createSocket()
    s.on('error', () => {})
    s.bind(0, '0.0.0.0')
    sockets.push(s)
  }
  const targets = new Map<UdxSocket, Map<string, UdxAddress>>(sockets.map(s => [s, new Map(plan.candidates.map(c => [`${c.host}:${c.port}`, c]))]))
  const sentAt = new Map<number, number>()
  const acked = new Map<number, { socket: UdxSocket, remote: UdxAddress }>()
  let sent = 0
  let done = false
  let winner: PunchedPath | undefined
  const { promise: proven, resolve } = Promise.withResolvers<PunchedPath | undefined>()
  const started = Date.now()

  const send = (socket: UdxSocket, type: 'probe' | 'ack', to: UdxAddress, nonce: number): void => {
    try {
      socket.trySend(encodePunch(plan.key, { type, link: plan.link, node: plan.me, nonce }), to.port, to.host)
      sent++
    } catch {
      // A full socket buffer drops this probe; the next round sends another.
    }
  }
  const probe = (socket: UdxSocket, to: UdxAddress): void => {
    const nonce = randomInt(2 ** 32 - 1)
    if (sentAt.size < 65_536) sentAt.set(nonce, Date.now())
    send(socket, 'probe', to, nonce)
  }

  const listeners = sockets.map(socket => {
    const onMessage = (bytes: Buffer, from: UdxAddress): void => {
      if (done || !isPunchDatagram(bytes)) return
      const m = decodePunch(plan.key, bytes)
      if (m === undefined || m.node !== plan.peer || !m.link.equals(plan.link)) return
      if (m.type === 'probe') {
        send(socket, 'ack', from, m.nonce)
        if (acked.size < 65_536) acked.set(m.nonce, { socket, remote: { host: from.host, port: from.port } })
        // Peer-reflexive: the probe came from a mapping we did not know; probing it gets an answer through it.
        const own = targets.get(socket) as Map<string, UdxAddress>
        const key = `${from.host}:${from.port}`
        if (!own.has(key) && own.size < MAX_TARGETS_PER_SOCKET) { own.set(key, { host: from.host, port: from.port }); probe(socket, from) }
      } else if (m.type === 'ack' && winner === undefined) {
        const at = sentAt.get(m.nonce)
        if (at === undefined) return
        winner = { socket, remote: { host: from.host, port: from.port }, rttMs: Date.now() - at, nonce: m.nonce }
        resolve(winner)
      }
    }
    socket.on('message', onMessage)
    return { socket, onMessage }
  })

  let rounds = 0
  const round = (): void => {
    if (done) return
    const extraDue = Date.now() - started < EXTRA_FAST_MS || rounds % 10 === 0
    rounds++
    for (const [socket, to] of targets) {
      if (winner !== undefined && socket !== winner.socket) continue
      if (socket !== plan.socket && !extraDue) continue
      for (const t of to.values()) probe(socket, t)
    }
  }
  round()
  const timer = setInterval(round, PROBE_EVERY_MS)

  // The spray: random ports of the peer's public addresses, at a bounded rate.
  let spray: NodeJS.Timeout | undefined
  const hosts = plan.sprayHosts ?? []
  if (hosts.length > 0) {
    const perMs = plan.sprayPerMs ?? 8
    const total = plan.sprayCount ?? 2048
    let left = total * hosts.length
    const ports = hosts.map(() => new Set<number>())
    const tick = (): void => {
      if (done || winner !== undefined) return
      for (let i = 0; i < perMs * 4 && left > 0; i++, left--) {
        const h = left % hosts.length
        const used = ports[h] as Set<number>
        let port = randomInt(1024, 65_536)
        while (used.has(port) && used.size < 64_000) port = randomInt(1024, 65_536)
        used.add(port)
        probe(plan.socket, { host: hosts[h] as string, port })
      }
      if (left > 0) spray = setTimeout(tick, 4)
    }
    tick()
  }

  return {
    proven,
    probesSent: () => sent,
    answered: nonce => {
      const a = acked.get(nonce)
      return a === undefined ? undefined : { ...a, nonce }
    },
    async finish (keep) {
      if (done) return
      done = true
      clearInterval(timer)
      clearTimeout(spray)
      for (const { socket, onMessage } of listeners) socket.off('message', onMessage)
      resolve(undefined)
      await Promise.all(sockets.filter(s => s !== plan.socket && s !== keep).map(async s => await s.close().catch(() => {})))
    }
  }
}
