/**
 * The `/status` document: what the agent serves and `edgemesh status`, the
 * demo and the tests read. One type for both sides of the wire.
 */

/** A connected tunnel peer. */
export interface StatusPeer {
  nodeName: string | undefined
  peerId: string
  addresses: string[]
  /** `direct`, or `relay` when the libp2p connection runs through a circuit. */
  path: 'direct' | 'relay'
  since: number
  /** This node holds a reservation on this peer (a relay). */
  reserved?: boolean
  /** The relay a relayed connection runs through, by node name when known. */
  via?: string
  /** Round-trip time from libp2p's connection monitor, ms. */
  rttMs?: number
  /** The path this peer's latest proxied TCP connection took on the TLS data path, when it took it (`punched`: a UDX stream over a punched UDP path). */
  dataPath?: 'direct' | 'punched' | 'relay'
  /** The relay that spliced it. */
  dataPathVia?: string
}

export interface StatusDocument {
  ready: boolean
  /** Components not started or not ready yet. */
  notReady: string[]
  services: { count: number, source: string, synced: boolean, lastChange?: number | undefined }
  /** Totals of a few counters from /metrics. */
  counters?: Record<string, number>
  proxy?: { servicePorts: number, kernel: number, userspace: number, listeners: Record<string, number> }
  /** `error`: why the tunnel is not running (its state files cannot be used), while the rest serves. */
  tunnel?: { peerId?: string | undefined, relay: boolean, addresses: string[], peers: StatusPeer[], error?: string | undefined }
  gateway?: GatewayStatus
  /** What NAT the node is behind, from the relays' reflectors (after the first check). */
  nat?: NatStatus
  /** The edge CNI's pod block (`error`: why none is claimed yet), the other nodes' blocks routed to edge_tun0, and pod traffic per peer node. */
  cni?: {
    block?: string
    side?: 'edge' | 'cloud'
    /** The Node's `spec.podCIDR`, or claimed from the side's mesh CIDRs. */
    source?: 'podCIDR' | 'claimed'
    error?: string
    routes?: string[]
    peers?: Array<{ nodeName: string, packetsOut: number, bytesOut: number, packetsIn: number, bytesIn: number, dropped: number, channel: string }>
  }
}

/** The gateway's listeners and routes; `rejected` names resources left out and why. */
export interface GatewayStatus {
  listeners: Array<{
    port: number
    kind: string
    tls: string
    gateways: string[]
    addresses: string[]
    failed?: Array<{ address: string, error: string }>
    connections: number
    routes?: Array<{ domain: string, routes: string[] }>
  }>
  rejected: Record<string, string>
  problems: string[]
}

/** `public`: no NAT; `cone`: one mapping for every destination; `symmetric`: one per destination; `udp-blocked`: no relay answered. */
export type NatKind = 'public' | 'cone' | 'symmetric' | 'unknown' | 'udp-blocked'

/** What NAT the node is behind, from the relays' reflectors (src/nat). */
export interface NatStatus {
  kind: NatKind
  /** RFC 4787 terms. */
  mapping: 'endpoint-independent' | 'endpoint-dependent' | 'unknown'
  /** `port-dependent`: only the exact address and port sent to may answer (Linux masquerade, most firewalls). */
  filtering: 'port-dependent' | 'port-independent' | 'unknown'
  /** The NAT kept the local port (a cone that preserves ports is the easiest to punch). */
  portPreserved: boolean | undefined
  localPort: number
  /** Where each relay saw this node. */
  mapped: Array<{ relay: string, address: string }>
  /** Addresses peers could try: LAN addresses with the local port, then the mapped ones. */
  candidates: string[]
  /** In words, for status and doctor. */
  summary: string
  checkedAt: string
  /** Per peer reached through a relay: whether a punched path carries its connections, or why not. */
  peers?: NatPeerStatus[]
  /** The port the node's router mapped to its punching socket, at the public address the relays saw. */
  portMapping?: { address: string, protocol: string, since: number }
}

/** A peer's punched path (src/nat/direct-paths.ts). */
export interface NatPeerStatus {
  nodeName: string
  /** `direct`: a proven path carries new connections; `relayed`: they go through relays (see `reason`); `punching`: under way. */
  path: 'direct' | 'relayed' | 'punching'
  /** What a direct path runs on: UDP, or TCP where a site blocks UDP. */
  over?: 'udp' | 'tcp'
  address?: string
  rttMs?: number
  /** Why the pair is relayed (both symmetric, UDP blocked, the last punch failed…). */
  reason?: string
  since: number
}
