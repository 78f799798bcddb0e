// The TLS data path on loopback: real sockets, real TLS 1.3 PSK handshakes,
// a relay that splices parked connections.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect } from 'node:net'
import type { Server, Socket } from 'node:net'
import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import { randomBytes } from 'node:crypto'
import { connect as tlsConnect } from 'node:tls'
import { Registry } from 'prom-client'
import { DataPath } from '../../../src/datapath/datapath.ts'
import type { DataPathInit, PeerRoute } from '../../../src/datapath/datapath.ts'
import { cipherPreference, pairIdentity, tlsKey } from '../../../src/datapath/wire.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { BufferReclaimer } from '../../../src/net/buffer-reclaimer.ts'
import { eventually } from '../../helpers/control-plane.ts'
import { freePort, roundTrip, startEcho } from '../../helpers/net.ts'

const KEY = randomBytes(32)

describe('DataPath: TLS 1.3 PSK between agents, relay splicing', () => {
  let echo: Server
  let echoPort: number
  const paths: DataPath[] = []

  async function node (nodeName: string, extra: Partial<DataPathInit> = {}, metrics = new Registry()): Promise<DataPath> {
    // A real reclaimer, every 1 MiB, so tests can see the splices report to it.
    const copied = new BufferReclaimer({ metrics }, { everyBytes: 1 << 20 })
    const d = new DataPath({ logger: noopLogger, metrics, copied }, { nodeName, port: 0, listenHost: '127.0.0.1', pnetKey: KEY, isRelay: false, ...extra })
    await d.start()
    paths.push(d)
    return d
  }
  const at = (d: DataPath): { host: string, port: number } => ({ host: '127.0.0.1', port: d.port() })

  before(async () => {
    ;({ server: echo, port: echoPort } = await startEcho())
  })

  after(async () => {
    for (const d of paths) await d.stop()
    echo.close()
  })

  test('direct: bytes both ways intact, path reported, the pool makes later connections cheaper', async () => {
    const metrics = new Registry()
    const a = await node('node-a', {}, metrics)
    const b = await node('node-b')
    const route: PeerRoute = { nodeName: 'node-b', direct: [at(b)], relays: [] }
    const payload = randomBytes(8 << 20)
    const first = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
    assert.equal(first.path, 'direct')
    assert.ok((await roundTrip(first.socket, payload)).equals(payload))
    assert.deepEqual(a.peers().map(p => [p.nodeName, p.path]), [['node-b', 'direct']])
    // Pooled connections are already through their handshake.
    await eventually('the pool fills', async () => {
      const t0 = performance.now()
      const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
      const ms = performance.now() - t0
      assert.equal((await roundTrip(c.socket, Buffer.from('x'))).toString(), 'x')
      return ms < 50
    }, 5000, 100)
    // The first dial found the pool empty; a later one took a ready connection.
    const takes = (await metrics.getSingleMetric('edgemesh_datapath_pool_takes_total')?.get())?.values ?? []
    const count = (result: string): number => takes.find(v => v.labels.result === result)?.value ?? 0
    assert.ok(count('miss') >= 1, JSON.stringify(takes))
    assert.ok(count('hit') >= 1, JSON.stringify(takes))
  })

  test('a target the far agent cannot reach is refused with the reason', async () => {
    const a = await node('node-c')
    const b = await node('node-d')
    const port = await freePort()
    await assert.rejects(a.dial({ nodeName: 'node-d', direct: [at(b)], relays: [] }, { ip: '127.0.0.1', port }), /could not reach 127\.0\.0\.1:\d+ \(.*ECONNREFUSED/)
  })

  test('no handshake without the PSK, and none with a node that is not the one asked for', async () => {
    const b = await node('node-e')
    const stranger = await node('stranger', { pnetKey: randomBytes(32) })
    await assert.rejects(stranger.dial({ nodeName: 'node-e', direct: [at(b)], relays: [] }, { ip: '127.0.0.1', port: echoPort }), /TLS handshake/)
    const a = await node('node-f')
    // node-e's address, but we ask for node-x: node-e refuses an identity not naming it.
    await assert.rejects(a.dial({ nodeName: 'node-x', direct: [at(b)], relays: [] }, { ip: '127.0.0.1', port: echoPort }), /TLS handshake/)
  })

  test("a client offering OpenSSL's default key exchange (agents before X25519 alone) finishes its handshake", async () => {
    const b = await node('node-g')
    const identity = pairIdentity('older-agent', 'node-g')
    const socket = tlsConnect({ host: '127.0.0.1', port: b.port(), minVersion: 'TLSv1.3', ciphers: cipherPreference(), pskCallback: () => ({ psk: tlsKey(KEY, identity), identity }), checkServerIdentity: () => undefined })
    await once(socket, 'secureConnect')
    socket.destroy()
  })

  test('reflect: a relay tells a node the address and port its connection came from; another PSK is told nothing', async () => {
    const relay = await node('relay-reflect', { isRelay: true })
    const a = await node('edge-reflect')
    a.setRelays([{ nodeName: 'relay-reflect', address: at(relay) }])
    const localPort = await freePort()
    assert.deepEqual(await a.reflect(localPort), [{ relay: 'relay-reflect', host: '127.0.0.1', port: localPort }])
    const stranger = await node('stranger-reflect', { pnetKey: randomBytes(32) })
    stranger.setRelays([{ nodeName: 'relay-reflect', address: at(relay) }])
    assert.deepEqual(await stranger.reflect(await freePort()), [])
  })

  test('through a relay: the parked node is reached, the relay splices, 8 MB intact, young-generation collections along the way', async () => {
    const relayMetrics = new Registry()
    const bMetrics = new Registry()
    const relay = await node('relay-1', { isRelay: true }, relayMetrics)
    const a = await node('edge-a')
    const b = await node('edge-b', {}, bMetrics)
    b.setRelays([{ nodeName: 'relay-1', address: at(relay) }])
    await eventually('edge-b parks on the relay', () => b.parkedOn()['relay-1'] === 2, 5000, 20)
    // A direct address nobody listens on: the relay is tried next.
    const route: PeerRoute = { nodeName: 'edge-b', direct: [{ host: '127.0.0.1', port: 1 }], relays: [{ nodeName: 'relay-1', address: at(relay) }] }
    const payload = randomBytes(8 << 20)
    const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
    assert.equal(c.path, 'relay')
    assert.equal(c.via, 'relay-1')
    assert.ok((await roundTrip(c.socket, payload)).equals(payload))
    // 8 MB each way through the relay's splice and edge-b's: at least 16 collections of 1 MiB each, counted.
    for (const registry of [relayMetrics, bMetrics]) {
      const collections = (await registry.getSingleMetric('edgemesh_net_buffer_collections_total')?.get())?.values[0]?.value ?? 0
      assert.ok(collections >= 14, `${collections} collections`)
    }
    assert.deepEqual(a.peers().find(p => p.nodeName === 'edge-b'), { nodeName: 'edge-b', path: 'relay', via: 'relay-1', since: a.peers().find(p => p.nodeName === 'edge-b')?.since })
    // The used parked connection is replaced (and one more parked while joins keep coming).
    await eventually('edge-b parks again', () => (b.parkedOn()['relay-1'] ?? 0) >= 2, 5000, 20)
  })

  test('a client-only node (the gateway) parks nothing on the relays, and still reaches parked nodes through them', async () => {
    const relay = await node('relay-client-only', { isRelay: true })
    const gateway = await node('gateway-client-only', { park: false })
    const b = await node('edge-parked')
    for (const n of [gateway, b]) n.setRelays([{ nodeName: 'relay-client-only', address: at(relay) }])
    await eventually('edge-parked parks on the relay', () => b.parkedOn()['relay-client-only'] === 2, 5000, 20)
    const c = await gateway.dial({ nodeName: 'edge-parked', direct: [{ host: '127.0.0.1', port: 1 }], relays: [{ nodeName: 'relay-client-only', address: at(relay) }] }, { ip: '127.0.0.1', port: echoPort })
    assert.equal(c.path, 'relay')
    assert.equal((await roundTrip(c.socket, Buffer.from('x'))).toString(), 'x')
    // Parking would have begun at once (setRelays) and been retried each second.
    await new Promise(resolve => setTimeout(resolve, 1500))
    assert.deepEqual(gateway.parkedOn(), { 'relay-client-only': 0 })
  })

  test('a burst of connections to a node with two parked on the relay all go through: joins wait for it to park again, and it parks more meanwhile', async () => {
    const relay = await node('relay-burst', { isRelay: true })
    const a = await node('edge-burst-a', { poolSize: 0 })
    const b = await node('edge-burst-b')
    b.setRelays([{ nodeName: 'relay-burst', address: at(relay) }])
    await eventually('edge-burst-b parks on the relay', () => b.parkedOn()['relay-burst'] === 2, 5000, 20)
    const route: PeerRoute = { nodeName: 'edge-burst-b', direct: [], relays: [{ nodeName: 'relay-burst', address: at(relay) }] }
    const replies = await Promise.all(Array.from({ length: 30 }, async (_, i) => {
      const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
      assert.equal(c.path, 'relay')
      return (await roundTrip(c.socket, Buffer.from(`burst ${i}`))).toString()
    }))
    assert.deepEqual(replies, Array.from({ length: 30 }, (_, i) => `burst ${i}`))
    // The burst made edge-burst-b park more than its idle two, up to eight.
    const parked = b.parkedOn()['relay-burst'] ?? 0
    assert.ok(parked > 2 && parked <= 8, `${parked} parked`)
    // A node that never parked there is refused at once, so the next relay is tried without waiting.
    const t0 = Date.now()
    await assert.rejects(a.dial({ nodeName: 'nobody', direct: [], relays: [{ nodeName: 'relay-burst', address: at(relay) }] }, { ip: '127.0.0.1', port: echoPort }), /nobody holds no reservation/)
    assert.ok(Date.now() - t0 < 1000, `refused after ${Date.now() - t0} ms`)
  })

  test('a dial whose client leaves stops at once, even while the relay waits for the node to park; handshakes beyond maxConnecting wait', async () => {
    const relay = await node('relay-abort', { isRelay: true })
    const a = await node('edge-abort-a', { poolSize: 0, maxConnecting: 1 })
    const b = await node('edge-abort-b')
    b.setRelays([{ nodeName: 'relay-abort', address: at(relay) }])
    const route: PeerRoute = { nodeName: 'edge-abort-b', direct: [], relays: [{ nodeName: 'relay-abort', address: at(relay) }] }
    const target = { ip: '127.0.0.1', port: echoPort }
    // One connection through, so the relay knows edge-abort-b; then b leaves: the relay still counts
    // it as present and holds joins for it a while (2 s).
    ;(await a.dial(route, target)).socket.destroy()
    await b.stop()
    await new Promise(resolve => setTimeout(resolve, 300)) // the relay sees b's parked connections close
    const first = new AbortController()
    const second = new AbortController()
    const t0 = performance.now()
    const dials = [a.dial(route, target, first.signal), a.dial(route, target, second.signal)]
    setTimeout(() => { second.abort(new Error('second client left')) }, 50)
    setTimeout(() => { first.abort(new Error('first client left')) }, 150)
    // The second waited for the only handshake slot and left from the queue; the first left mid-join.
    await assert.rejects(dials[1] as Promise<unknown>, /second client left/)
    await assert.rejects(dials[0] as Promise<unknown>)
    assert.ok(performance.now() - t0 < 1000, `${Math.round(performance.now() - t0)} ms`)
  })

  test('the pool makes no surplus connections: 100 relayed connections, five at a time, leave the endpoint no abandoned handshake', async () => {
    const relay = await node('relay-pool', { isRelay: true })
    const a = await node('edge-pool-a')
    const bMetrics = new Registry()
    const b = await node('edge-pool-b', {}, bMetrics)
    b.setRelays([{ nodeName: 'relay-pool', address: at(relay) }])
    await eventually('edge-pool-b parks', () => b.parkedOn()['relay-pool'] === 2, 5000, 20)
    const route: PeerRoute = { nodeName: 'edge-pool-b', direct: [], relays: [{ nodeName: 'relay-pool', address: at(relay) }] }
    // Waves of five at once, as clients arrive on a busy node.
    for (let wave = 0; wave < 20; wave++) {
      await Promise.all(Array.from({ length: 5 }, async (_, i) => {
        const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
        assert.equal((await roundTrip(c.socket, Buffer.from(`pooled ${wave}.${i}`))).toString(), `pooled ${wave}.${i}`)
      }))
    }
    await new Promise(resolve => setTimeout(resolve, 200))
    const rejected = (await bMetrics.getSingleMetric('edgemesh_datapath_rejected_connections_total')?.get())?.values ?? []
    assert.deepEqual(rejected.filter(v => v.value > 0), [], 'handshakes edge-pool-b saw abandoned')
  })

  test('relay limits hold: one joining node gets no more concurrent splices than maxSplicesPerNode', async () => {
    const relay = await node('relay-limited', { isRelay: true, relayLimits: { maxSplicesPerNode: 1 } })
    const a = await node('edge-lim-a', { poolSize: 0 })
    const b = await node('edge-lim-b', { parkedPerRelay: 3 })
    b.setRelays([{ nodeName: 'relay-limited', address: at(relay) }])
    await eventually('edge-lim-b parks three', () => b.parkedOn()['relay-limited'] === 3, 5000, 20)
    const route: PeerRoute = { nodeName: 'edge-lim-b', direct: [], relays: [{ nodeName: 'relay-limited', address: at(relay) }] }
    const held = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
    await assert.rejects(a.dial(route, { ip: '127.0.0.1', port: echoPort }), /edge-lim-a has too many relayed connections/)
    // Once the first one ends, the next goes through.
    assert.equal((await roundTrip(held.socket, Buffer.from('one'))).toString(), 'one')
    await eventually('a new splice is accepted', async () => {
      try {
        const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
        c.socket.destroy()
        return true
      } catch { return false }
    }, 5000, 50)
  })

  test('a node without the PSK cannot park on or join through a relay', async () => {
    const relay = await node('relay-2', { isRelay: true })
    const stranger = await node('stranger-2', { pnetKey: randomBytes(32) })
    stranger.setRelays([{ nodeName: 'relay-2', address: at(relay) }])
    await new Promise(resolve => setTimeout(resolve, 1500))
    assert.equal(stranger.parkedOn()['relay-2'], 0)
    const b = await node('edge-g')
    b.setRelays([{ nodeName: 'relay-2', address: at(relay) }])
    await eventually('edge-g parks', () => b.parkedOn()['relay-2'] === 2, 5000, 20)
    await assert.rejects(stranger.dial({ nodeName: 'edge-g', direct: [], relays: [{ nodeName: 'relay-2', address: at(relay) }] }, { ip: '127.0.0.1', port: echoPort }), /not authorized/)
  })

  test('with two relays, losing one lets new connections through the other within 3 s', async () => {
    const r1 = await node('relay-a', { isRelay: true })
    const r2 = await node('relay-b', { isRelay: true })
    const a = await node('edge-h', { poolSize: 0 })
    const b = await node('edge-i')
    const relays = [{ nodeName: 'relay-a', address: at(r1) }, { nodeName: 'relay-b', address: at(r2) }]
    b.setRelays(relays)
    await eventually('edge-i parks on both', () => b.parkedOn()['relay-a'] === 2 && b.parkedOn()['relay-b'] === 2, 5000, 20)
    const route: PeerRoute = { nodeName: 'edge-i', direct: [], relays }
    const open = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
    assert.equal(open.via, 'relay-a')
    await r1.stop()
    const t0 = performance.now()
    const c = await a.dial(route, { ip: '127.0.0.1', port: echoPort })
    const ms = performance.now() - t0
    assert.equal(c.via, 'relay-b')
    assert.ok(ms < 3000, `${ms} ms`)
    assert.equal((await roundTrip(c.socket, Buffer.from('after failover'))).toString(), 'after failover')
  })

  test('after a direct failure, connections take the relay at once; one background probe brings direct back', async () => {
    const relay = await node('relay-probe', { isRelay: true })
    const a = await node('edge-probe-a', { poolSize: 0, relayHeadStartMs: 5000, directRetryMs: 200 })
    const b = await node('edge-probe-b')
    b.setRelays([{ nodeName: 'relay-probe', address: at(relay) }])
    await eventually('edge-probe-b parks', () => b.parkedOn()['relay-probe'] === 2, 5000, 20)
    // A gate in front of b's direct address: refuses, holds (a path that never answers), or forwards.
    let mode: 'refuse' | 'hold' | 'forward' = 'refuse'
    const held: Socket[] = []
    const gate = createServer({ allowHalfOpen: true }, s => {
      if (mode === 'refuse') s.destroy()
      else if (mode === 'hold') held.push(s.on('error', () => {}))
      else s.pipe(connect({ port: b.port(), host: '127.0.0.1', allowHalfOpen: true }).on('error', () => s.destroy())).pipe(s).on('error', () => {})
    })
    gate.listen(0, '127.0.0.1')
    await once(gate, 'listening')
    try {
      const route: PeerRoute = { nodeName: 'edge-probe-b', direct: [{ host: '127.0.0.1', port: (gate.address() as { port: number }).port }], relays: [{ nodeName: 'relay-probe', address: at(relay) }] }
      const target = { ip: '127.0.0.1', port: echoPort }
      const opened: Duplex[] = []
      const dial = async (): Promise<{ path: string, socket: Duplex }> => {
        const c = await a.dial(route, target)
        opened.push(c.socket)
        return c
      }
      assert.equal((await dial()).path, 'relay')
      mode = 'hold'
      // Within directRetryMs: the relay, and direct is not tried.
      assert.equal((await dial()).path, 'relay')
      assert.equal(held.length, 0)
      await new Promise(resolve => setTimeout(resolve, 250))
      // Past it: still the relay at once (not after the 5 s head start), and one probe goes out.
      const t0 = performance.now()
      const c = await dial()
      assert.equal(c.path, 'relay')
      assert.ok(performance.now() - t0 < 2000, `${performance.now() - t0} ms`)
      assert.equal((await dial()).path, 'relay')
      await eventually('one probe held at the gate', () => held.length === 1, 2000, 10)
      assert.equal(held.length, 1)
      // The path heals: the held probe fails, the next one after directRetryMs gets through.
      mode = 'forward'
      for (const s of held) s.destroy()
      await new Promise(resolve => setTimeout(resolve, 250))
      assert.equal((await dial()).path, 'relay')
      await eventually('new connections go direct again', async () => (await dial()).path === 'direct', 5000, 100)
      const direct = await dial()
      assert.equal((await roundTrip(direct.socket, Buffer.from('direct again'))).toString(), 'direct again')
      for (const s of opened) s.destroy()
    } finally {
      for (const s of held) s.destroy()
      gate.close()
    }
  })
})
