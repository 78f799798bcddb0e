/**
 * Which punching a pair of NATs needs, from what each side's checks found
 * (pure; shared by both sides, so both arrive at the same plan):
 *
 * | this side | peer | plan |
 * |---|---|---|
 * | cone or public | cone or public | probe the peer's candidates |
 * | symmetric | cone (port-dependent filtering) | probe from 256 extra sockets |
 * | cone (port-dependent filtering) | symmetric | spray probes at random ports of the peer's public address |
 * | symmetric | symmetric | none: relayed (each side's port is unknown to the other) |
 * | either UDP-blocked | | none: relayed |
 *
 * A symmetric NAT that keeps the local port is punched as a cone: its port
 * for a new destination is the one the relays saw. A node whose router
 * mapped it a port (port-mapping.ts) is punched as a public node at that
 * port; it probes only the peer's own mapped port, if any, and otherwise just
 * answers: a probe of its own would open another mapping on its NAT, in the
 * way of the peer's packets to the mapped port.
 */
import type { NatKind } from '../observability/status.ts'
import type { UdxAddress } from './udx.ts'

/** What the rendezvous tells of a NAT (this node's own check has the same fields). */
export interface PeerNat {
  kind: NatKind
  portPreserved: boolean | undefined
  filtering: 'port-dependent' | 'port-independent' | 'unknown'
  candidates: UdxAddress[]
  /** The public addresses the relays saw. */
  public: string[]
  /** A port the node's router mapped to its socket, at its public address. */
  routerMapping?: UdxAddress | undefined
}

export type PunchPlanChoice = { candidates: UdxAddress[], manySockets: boolean, sprayHosts: string[] } | { refuse: string }

/** Symmetric in effect: a new port per destination that cannot be predicted. */
function unpredictable (n: Pick<PeerNat, 'kind' | 'portPreserved' | 'routerMapping'>): boolean {
  return n.kind === 'symmetric' && !n.portPreserved && n.routerMapping === undefined
}

/** Whether packets from any port of the peer's address get in (full cone, address-restricted, no NAT). */
function admitsAnyPort (n: Pick<PeerNat, 'kind' | 'filtering' | 'routerMapping'>): boolean {
  return n.kind === 'public' || n.filtering === 'port-independent' || n.routerMapping !== undefined
}

export function punchPlan (mine: Pick<PeerNat, 'kind' | 'portPreserved' | 'filtering' | 'routerMapping'>, theirs: PeerNat): PunchPlanChoice {
  if (mine.kind === 'udp-blocked') return { refuse: 'UDP is blocked at this node' }
  if (theirs.kind === 'udp-blocked') return { refuse: 'UDP is blocked at the peer' }
  if (unpredictable(mine) && unpredictable(theirs)) return { refuse: 'both nodes are behind symmetric NATs' }
  if (theirs.candidates.length === 0 && theirs.public.length === 0) return { refuse: 'the peer has no candidate address' }
  return {
    candidates: mine.routerMapping === undefined ? theirs.candidates : theirs.routerMapping === undefined ? [] : [theirs.routerMapping],
    // Our new ports are unknown to the peer: many of them, one of which its spray may hit.
    manySockets: unpredictable(mine) && !admitsAnyPort(theirs),
    // The peer's new ports are unknown to us: probe many, so its probes find an open door.
    sprayHosts: unpredictable(theirs) && !admitsAnyPort(mine) ? theirs.public : []
  }
}

/** A node's public TCP endpoint for one local port, as the relays saw it (relay-server's `reflect`). */
export interface TcpMapping {
  localPort: number
  public: { host: string, port: number }
  /** The NAT kept the local port: a connection to the peer will come from the same public port. */
  preserved: boolean
}

export type TcpPunchPlanChoice = { targets: Array<{ host: string, port: number }>, extraSockets: number, sprayHost?: string } | { refuse: string }

/**
 * TCP simultaneous open, where UDP cannot be punched (pure, shared by both sides):
 *
 * | this side | peer | plan |
 * |---|---|---|
 * | port kept | port kept | connect from that port to the peer's |
 * | random ports | port kept | connect from 256 new ports to the peer's |
 * | port kept | random ports | SYNs from that port to random ports of the peer's address |
 * | random ports | random ports | none: relayed |
 */
export function tcpPunchPlan (mine: TcpMapping, theirs: TcpMapping): TcpPunchPlanChoice {
  if (!mine.preserved && !theirs.preserved) return { refuse: 'both nodes\' NATs pick TCP ports at random' }
  if (!theirs.preserved) return { targets: [], extraSockets: 0, sprayHost: theirs.public.host }
  return { targets: [theirs.public], extraSockets: mine.preserved ? 0 : BIRTHDAY_TCP_SOCKETS }
}

const BIRTHDAY_TCP_SOCKETS = 256

/** Whether the UDP plan's refusal is one TCP may get around (UDP blocked at either side). */
export function udpBlocked (plan: PunchPlanChoice): boolean {
  return 'refuse' in plan && /UDP is blocked/.test(plan.refuse)
}
