// Punched paths between two DirectPaths on loopback: the rendezvous over an
// in-process channel (the data path's relayed channel in the agent), probes
// and streams on real UDP sockets. NAT kinds and birthday probing need
// routers: test/e2e/lab/hole-punch.test.ts.
import { describe, test, after } from 'node:test'
import assert from 'node:assert/strict'
import { duplexPair, type Duplex } from 'node:stream'
import { randomBytes } from 'node:crypto'
import { Registry } from 'prom-client'
import { DirectPathMetrics, DirectPaths } from '../../../src/nat/index.ts'
import type { NatReport } from '../../../src/nat/index.ts'
import { noopLogger } from '../../../src/observability/logger.ts'

const KEY = randomBytes(32)

function publicReport (port: number): NatReport {
  return {
    kind: 'public',
    mapping: 'endpoint-independent',
    filtering: 'port-independent',
    portPreserved: true,
    localPort: port,
    mapped: [{ relay: 'r1', address: `127.0.0.1:${port}` }, { relay: 'r2', address: `127.0.0.1:${port}` }],
    candidates: [`127.0.0.1:${port}`],
    summary: 'no NAT',
    checkedAt: new Date().toISOString()
  }
}

/** Two nodes whose channels meet in-process; each serves inbound streams with `serve`. */
function pair (serve: (node: string, stream: Duplex) => void, keys: [Uint8Array, Uint8Array] = [KEY, KEY], nat: Record<string, Partial<NatReport>> = {}, retryMs?: number): { a: DirectPaths, b: DirectPaths, registries: Map<string, Registry> } {
  const registries = new Map<string, Registry>()
  const nodes = new Map<string, DirectPaths>()
  const handlers = new Map<string, (peer: string, socket: Duplex) => void>()
  const make = (name: string, key: Uint8Array): DirectPaths => {
    const registry = new Registry()
    registries.set(name, registry)
    const paths: DirectPaths = new DirectPaths({
      logger: noopLogger,
      metrics: new DirectPathMetrics(registry),
      nat: () => ({ ...publicReport(paths.datagrams()?.port ?? 0), ...nat[name] }),
      rendezvous: {
        openChannel: async (peer, channel) => {
          const handler = handlers.get(`${peer}/${channel}`)
          if (handler === undefined) return undefined
          const [mine, theirs] = duplexPair()
          handler(name, theirs)
          return mine
        },
        handleChannel: (channel, handler) => { handlers.set(`${name}/${channel}`, handler) },
        serve: stream => { serve(name, stream) }
      }
    }, { nodeName: name, pnetKey: key, host: '127.0.0.1', openTimeoutMs: 500, keepaliveMs: 300, retryMs })
    nodes.set(name, paths)
    return paths
  }
  return { a: make('node-a', keys[0]), b: make('node-b', keys[1]), registries }
}

async function until (what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

async function readAll (stream: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

describe('punched paths on loopback', () => {
  const started: DirectPaths[] = []
  after(async () => { await Promise.all(started.map(async p => { await p.stop() })) })

  test('a relayed peer becomes a link on both sides; streams both ways carry bytes intact', async () => {
    const { a, b, registries } = pair((_node, stream) => { stream.pipe(stream) })
    await a.start(); await b.start()
    started.push(a, b)
    assert.equal(a.has('node-b'), false)
    a.want('node-b')
    await until('a link on both sides', () => a.has('node-b') && b.has('node-a'))
    assert.equal(a.status().find(s => s.nodeName === 'node-b')?.path, 'direct')
    assert.equal(b.status().find(s => s.nodeName === 'node-a')?.address, `127.0.0.1:${a.datagrams()?.port}`)
    assert.match(await registries.get('node-a')?.getSingleMetricAsString('edgemesh_nat_direct_rtt_seconds') ?? '', /\{peer="node-b"\} \d/)
    assert.match(await registries.get('node-a')?.getSingleMetricAsString('edgemesh_nat_direct_links') ?? '', /^edgemesh_nat_direct_links 1$/m)

    const payload = randomBytes(1 << 20)
    for (const [from, to] of [[a, 'node-b'], [b, 'node-a']] as const) {
      const stream = await from.open(to)
      const echoed = readAll(stream)
      stream.end(payload)
      assert.ok((await echoed).equals(payload), `echo through ${to}`)
    }
    // Ten at once: each its own stream.
    const many = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
      const s = await a.open('node-b')
      const echoed = readAll(s)
      s.end(`stream ${i}`)
      return (await echoed).toString()
    }))
    assert.deepEqual(many, Array.from({ length: 10 }, (_, i) => `stream ${i}`))
  })

  test('a peer that stops answering: the open fails within a second, the link is dropped and the reason shown', async () => {
    const { a, b, registries } = pair((_node, stream) => { stream.pipe(stream) })
    await a.start(); await b.start()
    started.push(a)
    a.want('node-b')
    await until('a link', () => a.has('node-b'))
    await b.stop()
    const t0 = Date.now()
    await assert.rejects(a.open('node-b'), /did not answer/)
    assert.ok(Date.now() - t0 < 1500, `failed after ${Date.now() - t0} ms`)
    assert.equal(a.has('node-b'), false)
    const s = a.status().find(x => x.nodeName === 'node-b')
    assert.equal(s?.path, 'relayed')
    assert.match(s?.reason ?? '', /direct path lost/)
    assert.match(await registries.get('node-a')?.getSingleMetricAsString('edgemesh_nat_relayed_peers') ?? '', /\{reason="path_lost"\} 1$/m)
    assert.doesNotMatch(await registries.get('node-a')?.getSingleMetricAsString('edgemesh_nat_direct_rtt_seconds') ?? '', /node-b/)
    // Not tried again at once: the retry waits (60 s by default).
    a.want('node-b')
    assert.equal(a.status().find(x => x.nodeName === 'node-b')?.path, 'relayed')
  })

  test('another PSK: probes are not answered, no link, no stream', async () => {
    const { a, b } = pair(() => { assert.fail('nothing may be served') }, [KEY, randomBytes(32)])
    await a.start(); await b.start()
    started.push(a, b)
    a.want('node-b')
    await until('the punch to fail', () => a.status().find(s => s.nodeName === 'node-b')?.path === 'relayed', 15_000)
    assert.equal(a.has('node-b'), false)
    assert.equal(b.has('node-a'), false)
    assert.match(a.status().find(s => s.nodeName === 'node-b')?.reason ?? '', /no probe answered|not answered/)
  })

  test('a node that refused a punch (UDP blocked here) can still ask for one itself later', async () => {
    const { a, b } = pair(() => {}, [KEY, KEY], { 'node-b': { kind: 'udp-blocked', mapped: [], candidates: [] } }, 20)
    await a.start(); await b.start()
    started.push(a, b)
    a.want('node-b')
    await until('node-b refused', () => /UDP is blocked at this node/.test(b.status().find(s => s.nodeName === 'node-a')?.reason ?? ''))
    await new Promise(resolve => setTimeout(resolve, 50))
    // node-b's own request is answered by node-a, which refuses in turn: its reason says so.
    b.want('node-a')
    await until('node-b asked node-a', () => /node-a: UDP is blocked at the peer/.test(b.status().find(s => s.nodeName === 'node-a')?.reason ?? ''))
    assert.equal(a.has('node-b'), false)
  })
})
