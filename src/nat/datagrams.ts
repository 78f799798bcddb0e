/** Plain datagrams on a UDP socket someone else owns (the NAT checks on the node's punching socket). */
export interface Datagrams {
  /** The socket's local port. */
  readonly port: number
  send (bytes: Uint8Array, port: number, host: string): void
  /** Calls `fn` for each datagram that is not the socket owner's own; returns how to stop. */
  listen (fn: (bytes: Buffer, from: { host: string, port: number }) => void): () => void
}
