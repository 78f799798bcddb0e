// The one splice, between real TCP sockets: client → agent (splice) → backend.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { splice } from '../../../src/net/splice.ts'
import { connectWithin } from '../../../src/net/connect.ts'
import { ConnectTimeoutError } from '../../../src/net/errors.ts'

interface Rig { client: Socket, backendSide: Promise<Socket>, agentSockets: Socket[], close: () => Promise<void> }

async function listen (server: Server): Promise<number> {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as { port: number }).port
}

async function rig (onBackend: (s: Socket) => void): Promise<Rig> {
  let gotBackend: (s: Socket) => void = () => {}
  const backendSide = new Promise<Socket>(resolve => { gotBackend = resolve })
  const backend = createServer({ allowHalfOpen: true }, s => { gotBackend(s); onBackend(s) })
  const backendPort = await listen(backend)
  const agentSockets: Socket[] = []
  const agent = createServer({ allowHalfOpen: true }, a => {
    a.on('error', () => {})
    connectWithin({ host: '127.0.0.1', port: backendPort, allowHalfOpen: true }, 1000).then(b => {
      agentSockets.push(a, b)
      splice(a, b)
    }, () => a.destroy())
  })
  const agentPort = await listen(agent)
  const client = connect({ host: '127.0.0.1', port: agentPort, allowHalfOpen: true })
  client.on('error', () => {})
  return {
    client,
    backendSide,
    agentSockets,
    close: async () => {
      client.destroy()
      await Promise.all([new Promise(resolve => agent.close(resolve)), new Promise(resolve => backend.close(resolve))])
    }
  }
}

const closed = async (s: Socket): Promise<void> => { if (!s.destroyed) await new Promise(resolve => s.once('close', resolve)) }

test('half-close: the client\'s FIN reaches the backend and its reply still comes back; then both agent sockets close', async () => {
  const r = await rig(s => {
    const chunks: Buffer[] = []
    s.on('data', c => chunks.push(c))
    s.on('end', () => { s.end(Buffer.concat([Buffer.from('got '), ...chunks])) })
  })
  try {
    r.client.end('ping')
    const reply: Buffer[] = []
    r.client.on('data', c => reply.push(c))
    await new Promise(resolve => r.client.once('end', resolve))
    assert.equal(Buffer.concat(reply).toString(), 'got ping')
    await Promise.all(r.agentSockets.map(closed))
  } finally {
    await r.close()
  }
})

test('a reset client resets the backend connection: nothing is left open on the endpoint', async () => {
  const r = await rig(() => {})
  try {
    await new Promise(resolve => r.client.once('connect', resolve))
    const backend = await r.backendSide
    backend.on('error', () => {})
    r.client.resetAndDestroy()
    await closed(backend)
    await Promise.all(r.agentSockets.map(closed))
  } finally {
    await r.close()
  }
})

test('a backend that closes first: the client sees EOF, and once it closes nothing stays open on the agent', async () => {
  const r = await rig(s => { s.destroy() })
  try {
    r.client.resume()
    await new Promise(resolve => r.client.once('end', resolve))
    r.client.end()
    await Promise.all(r.agentSockets.map(closed))
  } finally {
    await r.close()
  }
})

test('connectWithin fails on abort with the abort\'s reason, and passes on a refusal', async () => {
  const server = createServer()
  const port = await listen(server)
  const abort = new AbortController()
  abort.abort(new Error('client left'))
  await assert.rejects(connectWithin({ host: '127.0.0.1', port }, 1000, abort.signal), /client left/)
  await assert.rejects(connectWithin({ host: '127.0.0.1', port: 1 }, 1000), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED' && !(err instanceof ConnectTimeoutError))
  await new Promise(resolve => server.close(resolve))
})
