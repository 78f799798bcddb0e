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

/**
 * Opens connections to endpoints. The proxy depends on this interface only:
 * `DirectDialer` connects from this node; the tunnel implements it for
 * endpoints on other nodes.
 */
export interface EndpointDialer {
  /**
   * Resolves with a connected byte stream once the far end accepted (for the
   * tunnel: after the remote agent reported SUCCESS), rejects when it could
   * not connect. `signal` aborts a pending dial.
   */
  dialTcp (target: DialTarget, signal?: AbortSignal): Promise<Duplex>
  dialUdp (target: DialTarget, signal?: AbortSignal): Promise<DatagramChannel>
}
