import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import type { Duplex } from 'node:stream'
import { PeerDialer, RoutingDialer, EndpointRefusedError, PeerUnreachableError } from '../../../src/mesh/index.ts'
import type { EndpointDialer, PeerTarget, PeerTransport } from '../../../src/mesh/index.ts'
import { noopLogger } from '../../../src/observability/logger.ts'

const target = { ip: '10.0.0.9', port: 80, nodeName: 'edge-b', service: 'default/web' }

function transport (name: string, behave: (t: PeerTarget, signal: AbortSignal) => Promise<Duplex | undefined>, calls: string[]): PeerTransport {
  return { name, dialTcp: async (t, signal) => { calls.push(name); return await behave(t, signal) } }
}

test('the first transport with a way to the peer carries the connection', async () => {
  const calls: string[] = []
  const conn = new PassThrough()
  const d = new PeerDialer({ logger: noopLogger, transports: [transport('datapath', async () => conn, calls), transport('libp2p', async () => new PassThrough(), calls)] })
  assert.equal(await d.dialTcp(target), conn)
  assert.deepEqual(calls, ['datapath'])
})

test('a transport with no way to the peer (a Go agent) or a failing one hands over to the next', async () => {
  const calls: string[] = []
  const conn = new PassThrough()
  const none = new PeerDialer({ logger: noopLogger, transports: [transport('datapath', async () => undefined, calls), transport('libp2p', async () => conn, calls)] })
  assert.equal(await none.dialTcp(target), conn)
  const failing = new PeerDialer({ logger: noopLogger, transports: [transport('datapath', async () => { throw new Error('TLS handshake failed') }, calls), transport('libp2p', async () => conn, calls)] })
  assert.equal(await failing.dialTcp(target), conn)
  assert.deepEqual(calls, ['datapath', 'libp2p', 'datapath', 'libp2p'])
})

test('a refusal by the far agent ends the dial: every transport ends at that agent', async () => {
  const calls: string[] = []
  const d = new PeerDialer({
    logger: noopLogger,
    transports: [
      transport('datapath', async () => { throw new EndpointRefusedError('edge-b', '10.0.0.9:80', 'ECONNREFUSED') }, calls),
      transport('libp2p', async () => new PassThrough(), calls)
    ]
  })
  await assert.rejects(d.dialTcp(target), EndpointRefusedError)
  assert.deepEqual(calls, ['datapath'])
})

test('one budget covers every transport; without any way the error names the node', async () => {
  const calls: string[] = []
  const slow = transport('datapath', async (_t, signal) => await new Promise((_resolve, reject) => {
    signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true })
  }), calls)
  const d = new PeerDialer({ logger: noopLogger, transports: [slow, transport('libp2p', async () => new PassThrough(), calls)] }, { dialTimeoutMs: 50 })
  const t0 = performance.now()
  await assert.rejects(d.dialTcp(target), /aborted/)
  assert.ok(performance.now() - t0 < 1000)
  assert.deepEqual(calls, ['datapath'], 'the budget is spent: no fresh one for the next transport')
  const nothing = new PeerDialer({ logger: noopLogger, transports: [transport('datapath', async () => undefined, calls)] })
  await assert.rejects(nothing.dialTcp(target), (err: unknown) => err instanceof PeerUnreachableError && err.nodeName === 'edge-b' && err.code === 'EM_ERR_MESH_PEER_UNREACHABLE')
})

test('local endpoints are dialed directly, others through the peers', async () => {
  const used: string[] = []
  const fake = (name: string): EndpointDialer => ({
    dialTcp: async () => { used.push(name); return new PassThrough() },
    dialUdp: async () => { throw new Error('unused') }
  })
  const r = new RoutingDialer({ nodeName: 'edge-a', direct: fake('direct'), peers: fake('peers') })
  await r.dialTcp({ ...target, nodeName: 'edge-a' })
  await r.dialTcp({ ...target, nodeName: undefined })
  await r.dialTcp(target)
  assert.deepEqual(used, ['direct', 'direct', 'peers'])
  assert.equal(new RoutingDialer({ nodeName: 'edge-a', direct: fake('direct') }).isDirect('edge-b'), true, 'without a tunnel everything is direct')
})
