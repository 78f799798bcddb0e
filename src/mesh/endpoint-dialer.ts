import type { Duplex } from 'node:stream'

/** Where a proxied connection goes: one address of one endpoint. */
export interface DialTarget {
  /** Endpoint address (pod IP, or host IP for hostNetwork pods). */
  ip: string
  port: number
  /** The node the endpoint runs on, when known; decides direct vs tunnel. */
  nodeName?: string
  /** `namespace/name` of the Service, for logs and metrics. */
  service: string
}

/**
 * A message-preserving channel to a UDP endpoint: one `send` is one datagram
 * at the far end, one 'message' is one datagram from it.
 */
export interface DatagramChannel {
  send (payload: Buffer): void
  onMessage (listener: (payload: Buffer) => void): void
  /** Called once, when the channel is closed from either side or fails. */
  onClose (listener: (err?: Error) => void): void
  close (): void
}

export interface DialOptions {
  /**
   * Resolve as soon as the request is on its way, where the transport can
   * (early data, `early.ts`): the caller may write at once and reads after
   * `earlyAnswer(conn)` resolved. Other dials resolve once connected.
   */
  early?: boolean
}

/**
 * Opens connections to endpoints anywhere in the mesh. The proxy (and SOCKS5)
 * depend on this interface only: `DirectDialer` connects from this node,
 * `PeerDialer` reaches the agent on the endpoint's node through a peer
 * transport, and `RoutingDialer` picks between them.
 */
export interface EndpointDialer {
  /**
   * Resolves with a connected byte stream once the far end accepted (through
   * a peer: after the remote agent connected to the endpoint), rejects when it
   * could not connect (`EndpointRefusedError` when the remote agent was reached
   * but the endpoint was not). `signal` aborts a pending dial.
   */
  dialTcp (target: DialTarget, signal?: AbortSignal, options?: DialOptions): Promise<Duplex>
  dialUdp (target: DialTarget, signal?: AbortSignal): Promise<DatagramChannel>
}

/** A dial to an endpoint on another node: the target, with the node it runs on. */
export interface PeerTarget extends DialTarget {
  nodeName: string
}

/**
 * One way to reach the agent on another node and have it connect to an
 * endpoint there: our TLS data path, or upstream's libp2p proxy protocol.
 * `PeerDialer` tries them in order.
 */
export interface PeerTransport {
  /** `datapath`, `libp2p`: for logs and metrics. */
  readonly name: string
  /**
   * A connected stream to the endpoint, `undefined` when this transport has
   * no way to that peer (the peer does not speak it), so the next one is
   * tried. Rejects with `EndpointRefusedError` when the peer was reached and
   * the endpoint refused; any other rejection is this transport failing.
   */
  dialTcp (target: PeerTarget, signal: AbortSignal, options?: DialOptions): Promise<Duplex | undefined>
  /** As dialTcp, for a UDP endpoint; absent when the transport carries TCP only. */
  dialUdp? (target: PeerTarget, signal: AbortSignal): Promise<DatagramChannel | undefined>
}

/**
 * Connections between two agents for a module's own traffic (the edge CNI's
 * packets), on the data path: direct or through a relay, authenticated by
 * the PSK, the peer's node name proved by its handshake.
 */
export interface PeerChannels {
  /** A connection to `nodeName`'s handler of `channel`; undefined when that node has no data path (a Go agent). */
  open: (nodeName: string, channel: string, signal: AbortSignal) => Promise<Duplex | undefined>
  /** Serves `channel` on this node: `handler` gets each connection a peer opens for it. */
  handle: (channel: string, handler: (peer: string, socket: Duplex) => void) => void
}
