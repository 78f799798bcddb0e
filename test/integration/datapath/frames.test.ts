// Reusable data path connections (src/datapath/frames.ts), DataPath to DataPath
// on loopback: a proxied connection that ends cleanly leaves its TLS
// connection for the next one, with TCP's half-close, reset and flow control
// kept as on a connection of its own.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { Registry } from 'prom-client'
import { DataPath } from '../../../src/datapath/datapath.ts'
import type { PeerRoute } from '../../../src/datapath/datapath.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { eventually } from '../../helpers/control-plane.ts'
import { roundTrip, startEcho } from '../../helpers/net.ts'

const KEY = randomBytes(32)

async function counter (metrics: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const values = (await metrics.getSingleMetric(name)?.get())?.values ?? []
  return values.filter(v => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0)
}

/** A TCP forwarder in front of `port` that counts the connections it carries: the TLS connections a makes to b. */
async function countingGate (port: number): Promise<{ server: Server, port: number, accepted: () => number }> {
  let accepted = 0
  const server = createServer({ allowHalfOpen: true }, s => {
    accepted++
    const { connect } = process.getBuiltinModule('node:net')
    const up = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    up.on('error', () => s.destroy())
    s.on('error', () => up.destroy())
    s.pipe(up).pipe(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, port: (server.address() as { port: number }).port, accepted: () => accepted }
}

/** Resolves with what `conn` received and how it ended: its end, or an error or close without one. */
async function outcome (conn: Duplex): Promise<{ data: Buffer, ended: boolean }> {
  return await new Promise(resolve => {
    const parts: Buffer[] = []
    conn.on('data', (d: Buffer) => parts.push(d))
    conn.on('end', () => resolve({ data: Buffer.concat(parts), ended: true }))
    conn.on('error', () => {})
    conn.on('close', () => resolve({ data: Buffer.concat(parts), ended: false }))
  })
}

describe('DataPath: framed connections are reused', () => {
  const servers: Server[] = []
  const paths: DataPath[] = []
  let echoPort: number

  /** A TCP server on loopback for one test's endpoint; its port. */
  async function serve (handler: (s: Socket) => void): Promise<number> {
    const server = createServer({ allowHalfOpen: true }, handler)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    servers.push(server)
    return (server.address() as { port: number }).port
  }

  async function pair (name: string): Promise<{ a: DataPath, b: DataPath, metrics: Registry, bMetrics: Registry, route: PeerRoute, gate: Awaited<ReturnType<typeof countingGate>> }> {
    const metrics = new Registry()
    const bMetrics = new Registry()
    const a = new DataPath({ logger: noopLogger, metrics }, { nodeName: `${name}-a`, port: 0, listenHost: '127.0.0.1', pnetKey: KEY, isRelay: false, park: false })
    const b = new DataPath({ logger: noopLogger, metrics: bMetrics }, { nodeName: `${name}-b`, port: 0, listenHost: '127.0.0.1', pnetKey: KEY, isRelay: false, park: false })
    await a.start()
    await b.start()
    paths.push(a, b)
    const gate = await countingGate(b.port())
    servers.push(gate.server)
    return { a, b, metrics, bMetrics, route: { nodeName: `${name}-b`, direct: [{ host: '127.0.0.1', port: gate.port }], relays: [], frames: true }, gate }
  }

  before(async () => {
    const echo = await startEcho('echo:')
    servers.push(echo.server)
    echoPort = echo.port
  })

  after(async () => {
    for (const d of paths) await d.stop()
    for (const s of servers) s.close()
  })

  test('40 connections one after another: every reply intact, and a handful of TLS connections carry them all', async () => {
    const { a, metrics, route, gate } = await pair('seq')
    for (let i = 0; i < 40; i++) {
      const payload = randomBytes(1 + i * 97)
      const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
      const reply = await roundTrip(c.socket, payload)
      assert.ok(reply.equals(Buffer.concat([Buffer.from('echo:'), payload])), `connection ${i}`)
    }
    // The first dial handshakes and the pool fills to 2; after that, connections come back to it.
    assert.ok(gate.accepted() <= 4, `${gate.accepted()} TLS connections for 40 proxied ones`)
    assert.ok(await counter(metrics, 'edgemesh_datapath_connections_reused_total') >= 36)
    assert.equal(await counter(metrics, 'edgemesh_datapath_connections_total', { result: 'ok' }), 40)
  })

  test('8 MiB each way: intact with flow control, raw after the first 256 KiB, and that TLS connection ends with it', async () => {
    const { a, metrics, route, gate } = await pair('bulk')
    for (let i = 0; i < 3; i++) {
      const payload = randomBytes(8 << 20)
      const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
      const reply = await roundTrip(c.socket, payload)
      assert.equal(reply.length, payload.length + 5)
      assert.ok(reply.subarray(5).equals(payload))
    }
    assert.equal(await counter(metrics, 'edgemesh_datapath_connections_reused_total'), 0)
    // 200 KiB each way stays framed, and its connection is reused.
    const before = gate.accepted()
    for (let i = 0; i < 5; i++) {
      const payload = randomBytes(200 << 10)
      const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
      assert.ok((await roundTrip(c.socket, payload)).subarray(5).equals(payload))
    }
    assert.ok(await counter(metrics, 'edgemesh_datapath_connections_reused_total') >= 4)
    assert.ok(gate.accepted() - before <= 2, `${gate.accepted() - before} new TLS connections for 5 proxied ones`)
  })

  test('raw one way, framed the other: the endpoint sends 1 MiB and ends, the client sends a little after it, and both arrive', async () => {
    const { a, route } = await pair('mixed')
    const big = randomBytes(1 << 20)
    const received: string[] = []
    const talkerPort = await serve(s => {
      const parts: Buffer[] = []
      s.on('data', (d: Buffer) => parts.push(d))
      s.on('end', () => received.push(Buffer.concat(parts).toString()))
      s.on('error', () => {})
      s.end(big)
    })
    const c = await a.dial(route, { ip: '127.0.0.1', port: talkerPort })
    const got = await outcome(c.socket)
    assert.equal(got.ended, true)
    assert.ok(got.data.equals(big))
    c.socket.end('thanks')
    await eventually('the endpoint read the client to its end', async () => received.length === 1, 5000, 10)
    assert.equal(received[0], 'thanks')
    const next = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
    assert.equal((await roundTrip(next.socket, 'z')).toString(), 'echo:z')
  })

  test('half-close both ways: the endpoint ends first, the client keeps sending, and the connection is reused after', async () => {
    const { a, metrics, route } = await pair('half')
    // Greets and ends at once, then records what the client sends after that.
    const received: string[] = []
    const greeterPort = await serve(s => {
      const parts: Buffer[] = []
      s.on('data', (d: Buffer) => parts.push(d))
      s.on('end', () => received.push(Buffer.concat(parts).toString()))
      s.on('error', () => {})
      s.end('hello')
    })
    const c = await a.dial(route, { ip: '127.0.0.1', port: greeterPort })
    const got = outcome(c.socket)
    assert.deepEqual(await got, { data: Buffer.from('hello'), ended: true })
    // The endpoint's FIN arrived; the client still writes, then ends.
    c.socket.end('after your end')
    await eventually('the endpoint read the client to its end', async () => received.length === 1, 5000, 10)
    assert.equal(received[0], 'after your end')
    await eventually('the connection went back to the pool', async () => await counter(metrics, 'edgemesh_datapath_connections_reused_total') === 1, 5000, 10)
    // And carries the next one.
    const next = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
    assert.equal((await roundTrip(next.socket, 'x')).toString(), 'echo:x')
  })

  test('an endpoint that resets: the client sees no clean end, and that TLS connection is not reused', async () => {
    const { a, metrics, route } = await pair('reset')
    const resetterPort = await serve(s => {
      s.on('error', () => {})
      s.once('data', () => { s.write('partial', () => { (s as Socket).resetAndDestroy() }) })
    })
    const c = await a.dial(route, { ip: '127.0.0.1', port: resetterPort })
    const got = outcome(c.socket)
    c.socket.write('go')
    const { ended } = await got
    assert.equal(ended, false, 'a reset reaches the client as a reset, not as an end')
    assert.equal(await counter(metrics, 'edgemesh_datapath_connections_reused_total'), 0)
    const next = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
    assert.equal((await roundTrip(next.socket, 'y')).toString(), 'echo:y')
  })

  test('an endpoint that ended and then resets on more bytes: once the far agent sees the reset, the client, still sending, is closed too', async () => {
    const { a, metrics, route } = await pair('late-reset')
    const port = await serve(s => {
      s.on('error', () => {})
      s.end('bye')
      s.once('data', () => { s.resetAndDestroy() })
    })
    const c = await a.dial(route, { ip: '127.0.0.1', port })
    const got = await new Promise<string>(resolve => { let text = ''; c.socket.on('data', (d: Buffer) => { text += d.toString() }); c.socket.once('end', () => resolve(text)) })
    assert.equal(got, 'bye')
    let error: Error | undefined
    c.socket.on('error', (err: Error) => { error = err })
    const closed = new Promise(resolve => c.socket.once('close', resolve))
    // The far agent learns of the reset when it writes the next bytes to the endpoint (its socket had read the FIN).
    c.socket.write('more')
    await new Promise(resolve => setTimeout(resolve, 100))
    c.socket.write('again')
    await closed
    assert.match(String(error), /closed the connection mid-stream/)
    assert.equal(await counter(metrics, 'edgemesh_datapath_connections_reused_total'), 0)
  })

  test('a client that leaves mid-stream: the endpoint sees its connection go, and no TLS connection is reused', async () => {
    const { a, metrics, route } = await pair('leave')
    let endpointGone: () => void = () => {}
    const gone = new Promise<void>(resolve => { endpointGone = resolve })
    const holderPort = await serve(s => {
      s.on('error', () => {})
      s.on('data', () => {})
      s.once('close', () => endpointGone())
    })
    const c = await a.dial(route, { ip: '127.0.0.1', port: holderPort })
    c.socket.write('some bytes')
    await new Promise(resolve => setTimeout(resolve, 50))
    c.socket.destroy()
    await gone
    assert.equal(await counter(metrics, 'edgemesh_datapath_connections_reused_total'), 0)
  })

  test('through a relay: connections are reused, so the relay joins a handful for 30 connections, and a punched path found later takes over', async () => {
    const relayMetrics = new Registry()
    const relay = new DataPath({ logger: noopLogger, metrics: relayMetrics }, { nodeName: 'frames-relay', port: 0, listenHost: '127.0.0.1', pnetKey: KEY, isRelay: true })
    const metrics = new Registry()
    const a = new DataPath({ logger: noopLogger, metrics }, { nodeName: 'frames-ra', port: 0, listenHost: '127.0.0.1', pnetKey: KEY, isRelay: false, park: false })
    const b = new DataPath({ logger: noopLogger, metrics: new Registry() }, { nodeName: 'frames-rb', port: 0, listenHost: '127.0.0.1', pnetKey: KEY, isRelay: false })
    for (const d of [relay, a, b]) { await d.start(); paths.push(d) }
    const relayAt = { nodeName: 'frames-relay', address: { host: '127.0.0.1', port: relay.port() } }
    b.setRelays([relayAt])
    await eventually('frames-rb parks on the relay', () => b.parkedOn()['frames-relay'] === 2, 5000, 20)
    const route: PeerRoute = { nodeName: 'frames-rb', direct: [], relays: [relayAt], frames: true }
    for (let i = 0; i < 30; i++) {
      const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
      assert.equal(c.path, 'relay')
      assert.equal((await roundTrip(c.socket, `r${i}`)).toString(), `echo:r${i}`)
    }
    const joins = await counter(relayMetrics, 'edgemesh_datapath_relay_joins_total')
    assert.ok(joins <= 4, `${joins} joins for 30 connections`)
    // A punched path appears (here: a TCP stream that b serves as src/nat hands it a UDX stream).
    const streamsPort = await serve(s => { b.serveStream(s) })
    const { connect } = process.getBuiltinModule('node:net')
    let wanted = 0
    let punched = false
    a.usePunchedPaths({
      has: () => punched,
      open: async () => connect({ host: '127.0.0.1', port: streamsPort, allowHalfOpen: true }),
      want: () => { wanted++ },
      lost: () => { punched = false }
    })
    const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
    assert.equal((await roundTrip(c.socket, 'before')).toString(), 'echo:before')
    assert.ok(wanted >= 1, 'a reused relayed connection still asks for a punched path')
    punched = true
    const paths2 = new Set<string>()
    for (let i = 0; i < 6; i++) {
      const d = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
      paths2.add(d.path)
      assert.equal((await roundTrip(d.socket, `p${i}`)).toString(), `echo:p${i}`)
    }
    assert.ok(paths2.has('punched'), `paths after the punch: ${[...paths2].join(', ')}`)
  })

  test('a route without frames (an older agent) gets the connection of its own, ended by TLS, as before', async () => {
    const { a, metrics, route, gate } = await pair('plain')
    const plain: PeerRoute = { ...route, frames: false }
    for (let i = 0; i < 5; i++) {
      const c = await a.dial(plain, { ip: '127.0.0.1', port: echoPort })
      assert.equal((await roundTrip(c.socket, `p${i}`)).toString(), `echo:p${i}`)
    }
    assert.equal(await counter(metrics, 'edgemesh_datapath_connections_reused_total'), 0)
    assert.ok(gate.accepted() >= 5)
  })
})
