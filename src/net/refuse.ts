import type { Duplex } from 'node:stream'

/**
 * Answers with `message` and ends. Whatever the client sent beyond its
 * request is read and dropped: on a half-open server socket unread bytes keep
 * the client's FIN, and the socket with it, until some deadline (or forever).
 */
export function refuse (socket: Duplex, message: string | Uint8Array): void {
  socket.end(message)
  socket.resume()
}
