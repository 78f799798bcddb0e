// A node's punching socket (DirectPaths, UDP) under abuse: garbage, datagrams
// that look like ours with a wrong MAC, a captured `open` replayed from
// another address, and an authenticated peer opening streams without end.
// Nothing is answered that did not prove the PSK from the link's own address,
// the stream cap holds, and the link still serves its peer afterwards. Then
// TCP punching's connections against strangers (the mux's own caps and broken
// frames are in test/integration/nat/tcp-mux.test.ts).
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { duplexPair, type Duplex } from 'node:stream'
import { Registry } from 'prom-client'
import { DirectPathMetrics, DirectPaths } from '../../src/nat/index.ts'
import type { NatReport } from '../../src/nat/index.ts'
import { encodePunch, punchKey } from '../../src/nat/punch-wire.ts'
import { startTcpPunch } from '../../src/nat/tcp-punch.ts'
import { noopLogger } from '../../src/observability/logger.ts'
import { freePort } from '../helpers/net.ts'

const PNET = randomBytes(32)

function report (port: number): NatReport {
  return { kind: 'public', mapping: 'endpoint-independent', filtering: 'port-independent', portPreserved: true, localPort: port, mapped: [], candidates: [`127.0.0.1:${port}`], summary: '', checkedAt: '' }
}

describe('punching socket under abuse', () => {
  const served: Duplex[] = []
  const handlers = new Map<string, (peer: string, socket: Duplex) => void>()
  const registry = new Registry()
  const make = (name: string, metrics: DirectPathMetrics): DirectPaths => {
    const paths: DirectPaths = new DirectPaths({
      logger: noopLogger,
      metrics,
      nat: () => report(paths.datagrams()?.port ?? 0),
      rendezvous: {
        openChannel: async (peer, channel) => {
          const [mine, theirs] = duplexPair()
          handlers.get(`${peer}/${channel}`)?.(name, theirs)
          return mine
        },
        handleChannel: (channel, handler) => { handlers.set(`${name}/${channel}`, handler) },
        serve: stream => { served.push(stream); stream.on('error', () => {}); stream.pipe(stream) }
      }
    }, { nodeName: name, pnetKey: PNET, host: '127.0.0.1', openTimeoutMs: 2000 })
    return paths
  }
  const victim = make('victim', new DirectPathMetrics(registry))
  const peer = make('peer', new DirectPathMetrics(new Registry()))
  let attacker: dgram.Socket
  let answers = 0

  before(async () => {
    await victim.start()
    await peer.start()
    peer.want('victim')
    for (let i = 0; i < 200 && !(peer.has('victim') && victim.has('peer')); i++) await new Promise(resolve => setTimeout(resolve, 20))
    assert.ok(victim.has('peer'))
    attacker = dgram.createSocket('udp4')
    attacker.bind(0, '127.0.0.1')
    await once(attacker, 'listening')
    attacker.on('message', () => { answers++ })
  })

  after(async () => {
    attacker?.close()
    await peer.stop()
    await victim.stop()
  })

  test('garbage, wrong MACs and replayed opens from another address: no answer, no stream', async () => {
    const port = victim.datagrams()?.port as number
    const wrongKey = punchKey(randomBytes(32))
    const link = randomBytes(8)
    for (let i = 0; i < 3000; i++) {
      const kind = i % 4
      const bytes = kind === 0
        ? randomBytes(1 + (i % 200))
        : kind === 1
          ? Buffer.concat([Buffer.from('EMP1'), randomBytes(40)])
          : kind === 2
            ? encodePunch(wrongKey, { type: 'open', link, node: 'peer', stream: i })
            // Valid MAC (a member's key), but neither the link's id nor its address.
            : encodePunch(punchKey(PNET), { type: i % 8 === 3 ? 'open' : 'probe', link, node: 'peer', stream: i, nonce: i } as never)
      attacker.send(bytes, port, '127.0.0.1')
      if (i % 200 === 0) await new Promise(resolve => setImmediate(resolve))
    }
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.equal(answers, 0, 'the victim answered the attacker')
    assert.equal(served.length, 0, 'a stream was accepted')
    assert.ok(victim.has('peer'), 'the link survived')
  })

  test('the peer itself opening streams without end: 1,024 at most per link, the rest refused and counted', async () => {
    const opened: Duplex[] = []
    let failed = 0
    // A member past the data path's own limits (16 handshakes at once): batches of 50, all kept open.
    for (let batch = 0; batch < 22; batch++) {
      const results = await Promise.allSettled(Array.from({ length: 50 }, async () => await peer.open('victim')))
      for (const r of results) {
        if (r.status === 'fulfilled') { r.value.on('error', () => {}); opened.push(r.value) } else failed++
      }
    }
    assert.equal(served.length, 1024, `${served.length} streams served`)
    assert.equal(opened.length, 1024)
    assert.equal(failed, 1100 - 1024)
    const refused = Number(/ (\d+)$/m.exec(await registry.getSingleMetricAsString('edgemesh_nat_streams_refused_total'))?.[1])
    assert.ok(refused >= 1100 - 1024, `${refused} refusals counted`)
    for (const s of opened) s.destroy()
    for (const s of served.splice(0)) s.destroy()
  })
})

// TCP punching (a UDP-blocked site): every connection a punch opens must prove
// the PSK in its first frame. A stranger that answers the SYNs (a listener on
// the peer's endpoint, or a guessed simultaneous open) and then sends garbage,
// a huge length, a probe MACed with another key, or nothing, is dropped, and
// its connection is never offered as the path.
describe('TCP punching against strangers', () => {
  const KEY = punchKey(PNET)
  const LINK = randomBytes(8)

  async function stranger (behaviour: (socket: Socket) => void): Promise<{ server: Server, port: number, closed: Promise<number> }> {
    const server = createServer(behaviour)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    let closedCount = 0
    let done: (n: number) => void = () => {}
    const closed = new Promise<number>(resolve => { done = resolve })
    // Read: a paused socket would not see the punch side's end.
    server.on('connection', socket => { socket.on('error', () => {}); socket.resume(); socket.once('close', () => { closedCount++; done(closedCount) }) })
    return { server, port: (server.address() as AddressInfo).port, closed }
  }

  const frame = (bytes: Buffer): Buffer => Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 255]), bytes])

  for (const [what, behaviour] of [
    ['garbage', (s: Socket) => { s.write(randomBytes(300)) }],
    ['a length of 65535', (s: Socket) => { s.write(Buffer.from([0xff, 0xff, 1, 2, 3])) }],
    ['a probe MACed with another PSK', (s: Socket) => { s.write(frame(encodePunch(punchKey(randomBytes(32)), { type: 'probe', link: LINK, node: 'peer', nonce: 7 }))) }],
    ['an ack MACed with another PSK', (s: Socket) => { s.write(frame(encodePunch(punchKey(randomBytes(32)), { type: 'ack', link: LINK, node: 'peer', nonce: 7 }))) }],
    ['nothing', () => {}]
  ] as const) {
    test(`a stranger sending ${what} is dropped within 2 s, on both sides of the punch`, async () => {
      for (const controlling of [true, false]) {
        const s = await stranger(behaviour)
        const localPort = await freePort()
        const attempt = startTcpPunch({ key: KEY, link: LINK, me: 'me', peer: 'peer', controlling, localPort, targets: [{ host: '127.0.0.1', port: s.port }], extraSockets: 0 })
        const t0 = Date.now()
        try {
          const proven = await Promise.race([attempt.proven, s.closed.then(() => 'closed' as const)])
          assert.equal(proven, 'closed', `controlling ${String(controlling)}: the stranger's connection was taken as the path`)
          assert.ok(Date.now() - t0 < 3000, `dropped after ${Date.now() - t0} ms`)
          assert.ok(attempt.opened() >= 1)
          assert.equal(attempt.answered(7), undefined)
        } finally {
          attempt.finish()
          s.server.close()
        }
      }
    })
  }
})
