// A node's punching socket (DirectPaths, UDP) under abuse: garbage, datagrams
// that look like ours with a wrong MAC, a captured `open` replayed from
// another address, and an authenticated peer opening streams without end.
// Nothing is answered that did not prove the PSK from the link's own address,
// the stream cap holds, and the link still serves its peer afterwards.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { duplexPair, type Duplex } from 'node:stream'
import { Registry } from 'prom-client'
import { DirectPathMetrics, DirectPaths } from '../../src/nat/index.ts'
import type { NatReport } from '../../src/nat/index.ts'
import { encodePunch, punchKey } from '../../src/nat/punch-wire.ts'
import { noopLogger } from '../../src/observability/logger.ts'

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
