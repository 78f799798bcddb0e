// Loopback helpers shared by tests that use real sockets.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import type { Server } from 'node:net'
import type { Duplex } from 'node:stream'

/** Ports handed out by this process: never twice. */
const handedOut = new Set<number>()

/**
 * A TCP port nobody listens on right now (on 127.0.0.1), below the kernel's
 * ephemeral range (32768+): a port from that range (`listen(0)`) could be
 * taken as the local port of any outgoing connection, by any test running
 * meanwhile, before its test binds it.
 */
export async function freePort (): Promise<number> {
  for (;;) {
    // Above the ports the agents use by default (10551, 20006 to 20008).
    const port = 21_000 + Math.floor(Math.random() * 11_000)
    if (handedOut.has(port)) continue
    const s = createServer()
    const ok = await new Promise<boolean>(resolve => {
      s.once('error', () => resolve(false))
      s.listen(port, '127.0.0.1', () => resolve(true))
    })
    if (!ok) continue
    await new Promise(resolve => s.close(resolve))
    handedOut.add(port)
    return port
  }
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

/**
 * Makes the kernel drop connections for a full accept queue (TcpExt ListenOverflows grows): a child
 * process listens with a backlog of 1 and blocks its event loop, so it never accepts, while this
 * process connects `connections` times. Loopback only; everything is closed on return.
 */
export async function overflowListenQueue (connections = 32): Promise<void> {
  const script = "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>{console.log(s.address().port);setTimeout(()=>{const end=Date.now()+1500;while(Date.now()<end){}process.exit(0)},50)})"
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  const [line] = await once(child.stdout, 'data') as [Buffer]
  const port = Number(line.toString().trim())
  await new Promise(resolve => setTimeout(resolve, 100))
  const sockets = Array.from({ length: connections }, () => connect(port, '127.0.0.1').on('error', () => {}))
  await exited
  for (const s of sockets) s.destroy()
}
