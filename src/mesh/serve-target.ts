/**
 * The receiving side of every peer transport: the agent on the endpoint's
 * node connects to the endpoint on behalf of a peer. One connect timeout and
 * one meaning of "refused" for the data path and the libp2p proxy protocol.
 */
import type { Socket } from 'node:net'
import { connectWithin } from '../net/connect.ts'

/** How long the endpoint may take to accept before the peer is told it refused. */
export const SERVE_CONNECT_TIMEOUT_MS = 10_000

/**
 * Connects to `ip:port` from this node. Resolves with the socket, or with the
 * reason it could not connect (the peer answers its transport's refusal then).
 */
export async function serveTarget (target: { ip: string, port: number }, signal?: AbortSignal): Promise<{ socket: Socket } | { refused: string }> {
  try {
    const socket = await connectWithin({ host: target.ip, port: target.port, noDelay: true, allowHalfOpen: true }, SERVE_CONNECT_TIMEOUT_MS, signal)
    return { socket }
  } catch (err) {
    return { refused: (err as Error).message }
  }
}
