// Loopback helpers shared by tests that use real sockets.
import { createServer } from 'node:net'
import type { Server } from 'node:net'
import type { Duplex } from 'node:stream'

/** A TCP port nobody listens on right now (on 127.0.0.1). */
export async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise(resolve => s.close(resolve))
  return port
}

/** Sends `payload`, half-closes, and resolves with everything the other side sent back until it ended. */
export async function roundTrip (conn: Duplex, payload: Buffer | string): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    conn.on('data', (d: Buffer) => parts.push(d))
    conn.on('end', () => resolve(Buffer.concat(parts)))
    conn.on('error', reject)
    conn.end(payload)
  })
}

/**
 * A half-close-aware echo on 127.0.0.1: answers after the client's FIN with
 * `prefix` + everything it received, like a request/response server.
 */
export async function startEcho (prefix = ''): Promise<{ server: Server, port: number }> {
  const server = createServer({ allowHalfOpen: true }, s => {
    const parts: Buffer[] = []
    s.on('data', (d: Buffer) => parts.push(d))
    s.on('end', () => s.end(Buffer.concat([Buffer.from(prefix), ...parts])))
    s.on('error', () => {})
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as { port: number }).port }
}
