// Early data through the data path, on real sockets: the proxy on node-a
// sends a client's first bytes to the agent on node-b together with the
// request instead of after its answer; a refused endpoint gets none of them,
// and they go to the next endpoint.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, createServer } from 'node:net'
import type { Server } from 'node:net'
import { randomBytes } from 'node:crypto'
import { Registry } from 'prom-client'
import { DataPath } from '../../../src/datapath/datapath.ts'
import { DataPathTransport } from '../../../src/datapath/transport.ts'
import { DirectDialer, PeerDialer, RoutingDialer } from '../../../src/mesh/index.ts'
import { EdgeProxy, NoInterceptor } from '../../../src/proxy/index.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { FakeServiceMap, endpoint, service } from '../../unit/dns/fixtures.ts'
import { freePort, roundTrip, startEcho } from '../../helpers/net.ts'
import type { ServiceEntry } from '../../../src/servicemap/types.ts'

const KEY = randomBytes(32)
/** One way between node-a and node-far. */
const DELAY_MS = 100

/** A backend on node-b that logs every line it got and answers it; it says `bye` after the client's FIN. */
async function lineBackend (): Promise<{ server: Server, port: number, lines: string[] }> {
  const lines: string[] = []
  const server = createServer({ allowHalfOpen: true }, s => {
    let buf = ''
    s.on('data', d => {
      buf += d.toString()
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        lines.push(buf.slice(0, i))
        s.write(`got ${buf.slice(0, i)}\n`)
        buf = buf.slice(i + 1)
      }
    })
    s.on('end', () => s.end('bye\n'))
    s.on('error', () => {})
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as { port: number }).port, lines }
}

/** A server that speaks first (as SMTP or MySQL), then echoes. */
async function greeter (): Promise<{ server: Server, port: number }> {
  const server = createServer(s => {
    s.write('220 ready\n')
    s.pipe(s)
    s.on('error', () => {})
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as { port: number }).port }
}

function svc (name: string, clusterIP: string, ports: number[], nodeName = 'node-b'): ServiceEntry {
  return service('default', name, { clusterIPs: [clusterIP], ports: [{ name: 'tcp', protocol: 'TCP', port: 80 }] },
    ports.map(port => endpoint('127.0.0.1', { nodeName, ports: [{ name: 'tcp', protocol: 'TCP', port }] })))
}

/** A TCP forwarder to `port` that holds every chunk and FIN `ms` each way: a slow link between two agents. */
async function delayLine (port: number, ms: number): Promise<{ server: Server, port: number }> {
  const server = createServer({ allowHalfOpen: true }, c => {
    const u = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    for (const [from, to] of [[c, u], [u, c]] as const) {
      from.on('data', d => setTimeout(() => { to.write(d) }, ms))
      from.on('end', () => setTimeout(() => { to.end() }, ms))
      from.on('error', () => { c.destroy(); u.destroy() })
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as { port: number }).port }
}

/** Connects, writes `send` at once, and returns what it read: until the server's FIN after its own (`end`), else until each line is answered. */
async function exchange (port: number, send: string, end: boolean): Promise<string> {
  return await new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => {
      s.write(send)
      if (end) s.end()
    })
    let out = ''
    const lines = (text: string): number => text.split('\n').length - 1
    s.on('data', d => {
      out += d.toString()
      // Not half-closing: done once every line is answered.
      if (!end && lines(out) >= lines(send)) { s.destroy(); resolve(out) }
    })
    s.on('end', () => { resolve(out); s.end() })
    s.on('error', reject)
  })
}

describe('early data through the data path', () => {
  const paths: DataPath[] = []
  let proxy: EdgeProxy
  let backend: Awaited<ReturnType<typeof lineBackend>>
  let greeting: Awaited<ReturnType<typeof greeter>>
  let echo: Server
  let echoPort: number
  let refusedPort: number
  let slow: { server: Server, port: number }
  const metrics = new Registry()

  before(async () => {
    for (const nodeName of ['node-a', 'node-b', 'node-far']) {
      const d = new DataPath({ logger: noopLogger, metrics: nodeName === 'node-a' ? metrics : new Registry() }, { nodeName, port: 0, listenHost: '127.0.0.1', pnetKey: KEY, isRelay: false })
      await d.start()
      paths.push(d)
    }
    const [a, b, far] = paths as [DataPath, DataPath, DataPath]
    slow = await delayLine(far.port(), DELAY_MS)
    backend = await lineBackend()
    greeting = await greeter()
    ;({ server: echo, port: echoPort } = await startEcho())
    refusedPort = await freePort()
    const routes = {
      routeTo: async (nodeName: string) => ({ nodeName, direct: [{ host: '127.0.0.1', port: nodeName === 'node-far' ? slow.port : b.port() }], relays: [] }),
      forget: () => {}
    }
    const peers = new PeerDialer({ logger: noopLogger, transports: [new DataPathTransport({ dataPath: a, routes, logger: noopLogger })] })
    proxy = new EdgeProxy({
      logger: noopLogger,
      metrics: new Registry(),
      serviceMap: new FakeServiceMap([
        svc('lines', '10.96.0.20', [backend.port]),
        // The first endpoint refuses (nothing listens there): every connection is tried on it first or second.
        svc('half-refused', '10.96.0.21', [refusedPort, backend.port]),
        svc('greeter', '10.96.0.22', [greeting.port]),
        svc('echo', '10.96.0.23', [echoPort]),
        svc('far', '10.96.0.24', [backend.port], 'node-far')
      ]),
      interceptor: new NoInterceptor(),
      dialer: new RoutingDialer({ nodeName: 'node-a', direct: new DirectDialer({ connectTimeoutMs: 1000 }), peers }),
      isDirect: nodeName => nodeName === 'node-a'
    }, { listenIp: '127.0.0.1', serviceFilterMode: 'FilterIfLabelExists', kernelPath: false, peekTimeoutMs: 500 })
    await proxy.start()
  })

  after(async () => {
    await proxy.stop()
    for (const d of paths) await d.stop()
    backend.server.close()
    greeting.server.close()
    echo.close()
    slow.server.close()
  })

  const listener = (clusterIP: string): number => proxy.listenerPort(clusterIP, 'tcp', 80) as number

  test('bytes written before the far agent answered reach the endpoint once it has connected', async () => {
    const [a, b] = paths as [DataPath, DataPath]
    const route = { nodeName: 'node-b', direct: [{ host: '127.0.0.1', port: b.port() }], relays: [] }
    const conn = await a.dialEarly(route, { ip: '127.0.0.1', port: echoPort })
    conn.socket.write('sent ahead of the answer')
    await conn.answered
    assert.equal((await roundTrip(conn.socket, Buffer.from(' and after it'))).toString(), 'sent ahead of the answer and after it')
    conn.socket.destroy()
    // A refused target rejects `answered` with the far agent's reason; what was written is dropped there.
    const refused = await a.dialEarly(route, { ip: '127.0.0.1', port: refusedPort })
    refused.socket.write('never delivered')
    await assert.rejects(refused.answered, /could not reach 127\.0\.0\.1:\d+ \(.*ECONNREFUSED/)
  })

  test('a request and the client FIN sent at once through the proxy: the reply and the bye after the FIN come back', async () => {
    assert.equal(await exchange(listener('10.96.0.20'), 'one\ntwo\n', true), 'got one\ngot two\nbye\n')
  })

  test('an endpoint that refuses gets nothing; the bytes sent ahead go to the next endpoint, once', async () => {
    backend.lines.length = 0
    for (let i = 0; i < 6; i++) {
      assert.equal(await exchange(listener('10.96.0.21'), `request ${i}\n`, true), `got request ${i}\nbye\n`)
    }
    assert.deepEqual(backend.lines, Array.from({ length: 6 }, (_, i) => `request ${i}`))
    const refused = (await metrics.getSingleMetric('edgemesh_datapath_connections_total')?.get())?.values.find(v => v.labels.result === 'refused')?.value ?? 0
    assert.ok(refused >= 3, `${refused} refusals counted`)
  })

  test('a server that speaks first is answered: nothing is waited for from the client', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: listener('10.96.0.22') })
      let out = ''
      s.on('data', d => {
        out += d.toString()
        if (out === '220 ready\n') s.write('HELO\n')
        if (out === '220 ready\nHELO\n') { s.destroy(); resolve(out) }
      })
      s.on('error', reject)
    })
    assert.equal(reply, '220 ready\nHELO\n')
  })

  test('4 MB written at once, beyond what is sent ahead of the answer, arrives intact', async () => {
    const payload = randomBytes(4 << 20)
    const s = connect({ host: '127.0.0.1', port: listener('10.96.0.23') })
    assert.ok((await roundTrip(s, payload)).equals(payload))
    s.destroy()
  })

  test('over a slow link, a new connection\'s first reply takes one round trip between the agents, not two', async () => {
    const port = listener('10.96.0.24')
    // The first connection handshakes; then the pool holds ready connections.
    assert.equal(await exchange(port, 'warm\n', false), 'got warm\n')
    await new Promise(resolve => setTimeout(resolve, 10 * DELAY_MS))
    const hits = async (): Promise<number> => (await metrics.getSingleMetric('edgemesh_datapath_pool_takes_total')?.get())?.values.find(v => v.labels.result === 'hit')?.value ?? 0
    const before = await hits()
    const t0 = performance.now()
    assert.equal(await exchange(port, 'ping\n', false), 'got ping\n')
    const ms = performance.now() - t0
    assert.equal(await hits(), before + 1, 'the timed connection took a pooled one')
    // Request and bytes together, answer and reply together: one round trip (200 ms). Waiting for the
    // answer before sending would take two.
    assert.ok(ms < 3 * DELAY_MS, `first reply after ${Math.round(ms)} ms; one round trip is ${2 * DELAY_MS} ms`)
  })
})
