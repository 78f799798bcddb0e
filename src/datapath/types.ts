/** The data path's settings, and the shapes of where a peer can be reached and how its last connection went. */
import type { AdmissionLimits } from './admission.ts'
import type { RelayLimits } from './relay-server.ts'
import type { SessionsInit } from './sessions.ts'

export interface HostPort { host: string, port: number }

/** Where a peer's data path can be reached: its own addresses, and the relays it parks on. */
export interface PeerRoute {
  nodeName: string
  direct: HostPort[]
  relays: Array<{ nodeName: string, address: HostPort }>
  /** The peer reads framed proxied connections and keeps its connections for the next one (frames.ts); older agents do not. */
  frames?: boolean
}

export interface DataPathInit {
  nodeName: string
  /**
   * TCP port of a listener of its own (TLS for everyone, splicing on relays); 0 picks one (tests).
   * Undefined: no listener of its own; the tunnel hands over the connections to its port that are
   * the data path's (see shared-port.ts, shareTunnelPort).
   */
  port?: number
  listenHost?: string
  /** The PSK file the keys derive from (read at start), or the 32-byte private-network key itself. */
  pskFile?: string
  pnetKey?: Uint8Array
  isRelay: boolean
  /** Idle, handshaken connections kept per peer. @default 2 */
  poolSize?: number
  /** Idle connections parked on each relay. @default 2 */
  parkedPerRelay?: number
  /** Park on the relays at all; false for a client-only node (the gateway), which no peer dials. @default true */
  park?: boolean
  /** How long a direct connect may take before the relay is tried. @default 1000 */
  connectTimeoutMs?: number
  /** After a direct failure a peer's new connections take the relays; direct is probed again in the background after this long. @default 30000 */
  directRetryMs?: number
  /** New connections handshaking at once; more wait, newest first. @default 16 */
  maxConnecting?: number
  /** How long direct gets before relays are tried alongside it. @default 250 */
  relayHeadStartMs?: number
  /** Limits on inbound connections that have not proved the PSK yet. */
  admission?: AdmissionLimits
  /** Relay limits: nodes parked, parked connections and concurrent splices per node. */
  relayLimits?: RelayLimits
  /** Connections on punched paths: how long a lost one may take to carry on through a relay, and when it counts as lost. */
  sessions?: SessionsInit
}

/** How a connection reached its peer: TCP to its address, a UDX stream over a punched UDP path, or a relay's splice. */
export type DataPathKind = 'direct' | 'punched' | 'relay'

/** Punched UDP paths (src/nat): streams to peers reached through relays otherwise. */
export interface PunchedPaths {
  /** True when new connections to the peer can take a punched path. */
  has (nodeName: string): boolean
  /** A raw stream to the peer over its punched path (TLS runs on top, as on TCP). */
  open (nodeName: string, signal?: AbortSignal): Promise<import('node:stream').Duplex>
  /** The peer's connections went through a relay: punch towards it in the background. */
  want (nodeName: string): void
  /** A connection on the peer's punched path went silent: the path is dropped, new connections take the relays. */
  lost (nodeName: string): void
}

export interface DataPathPeer {
  nodeName: string
  path: DataPathKind
  via?: string
  since: number
}
