// The relay's STUN reflector and NAT discovery on real UDP sockets (loopback):
// what a node learns, the change-port test, and the reflector's caps. The NAT
// kinds themselves need routers: test/e2e/lab/nat-discovery.test.ts.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { once } from 'node:events'
import { Registry } from 'prom-client'
import { NatDiscovery, NatMetrics, StunReflector, decodeResponse, encodeRequest } from '../../../src/nat/index.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { freePort } from '../../helpers/net.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'

async function udpFreePort (): Promise<number> {
  const s = dgram.createSocket('udp4')
  s.bind(0, '127.0.0.1')
  await once(s, 'listening')
  const port = s.address().port
  s.close()
  return port
}

describe('STUN reflector and NAT discovery on loopback', () => {
  const registry = new Registry()
  const metrics = new NatMetrics(registry)
  const reflectors: StunReflector[] = []
  const ports: number[] = []

  before(async () => {
    for (let i = 0; i < 2; i++) {
      const port = await udpFreePort()
      const r = new StunReflector({ logger: noopLogger, metrics }, { host: '127.0.0.1', port, perSourcePerSecond: 50 })
      await r.start()
      reflectors.push(r)
      ports.push(port)
    }
  })

  after(async () => {
    for (const r of reflectors) await r.stop()
  })

  const relays = (): Array<{ nodeName: string, addresses: Array<{ host: string, port: number }> }> => ports.map((port, i) => ({ nodeName: `relay-${i}`, addresses: [{ host: '127.0.0.1', port }] }))

  test('a node whose address the relays see as its own is public; its filtering admits another port', async () => {
    const nat = new NatDiscovery({ logger: noopLogger, metrics }, { relays: relays(), localAddresses: () => ['127.0.0.1'] })
    const r = await nat.check()
    assert.equal(r.kind, 'public')
    assert.equal(r.mapping, 'endpoint-independent')
    assert.equal(r.filtering, 'port-independent', 'the change-port answer came from the relay\'s second socket')
    assert.deepEqual(r.mapped, [{ relay: 'relay-0', address: `127.0.0.1:${r.localPort}` }, { relay: 'relay-1', address: `127.0.0.1:${r.localPort}` }])
    assert.deepEqual(r.candidates, [`127.0.0.1:${r.localPort}`])
    assert.equal(nat.report(), r)
    assert.match(await registry.getSingleMetricAsString('edgemesh_nat_kind'), /edgemesh_nat_kind\{kind="public"\} 1/)
  })

  test('the same mapping from two relays for an address that is not ours is a cone, port preserved', async () => {
    const r = await new NatDiscovery({ logger: noopLogger, metrics }, { relays: relays(), localAddresses: () => ['10.9.9.9'] }).check()
    assert.equal(r.kind, 'cone')
    assert.equal(r.portPreserved, true)
    assert.match(r.summary, /one public mapping for every destination, port preserved/)
    assert.deepEqual(r.candidates, [`10.9.9.9:${r.localPort}`, `127.0.0.1:${r.localPort}`])
  })

  test('no relay answering is udp-blocked, within the timeout, and says where it asked; one relay is not enough to tell', async () => {
    const silent = await udpFreePort()
    const started = performance.now()
    const r = await new NatDiscovery({ logger: noopLogger, metrics }, { relays: [{ nodeName: 'quiet', addresses: [{ host: '127.0.0.1', port: silent }] }], timeoutMs: 600 }).check()
    assert.ok(performance.now() - started < 2000)
    assert.equal(r.kind, 'udp-blocked')
    assert.match(r.summary, new RegExp(`no relay answered on UDP \\(127\\.0\\.0\\.1:${silent}\\)`))
    const one = await new NatDiscovery({ logger: noopLogger, metrics }, { relays: relays().slice(0, 1), localAddresses: () => ['10.9.9.9'] }).check()
    assert.equal(one.kind, 'unknown')
  })

  test('the reflector ignores requests shorter than its answer, malformed ones, and a source over its rate', async () => {
    const s = dgram.createSocket('udp4')
    s.bind(0, '127.0.0.1')
    await once(s, 'listening')
    const got: Buffer[] = []
    s.on('message', m => got.push(m))
    const port = ports[0] as number
    const { bytes } = encodeRequest()
    const short = Buffer.from(bytes.subarray(0, 20))
    short.writeUInt16BE(0, 2)
    s.send(short, port, '127.0.0.1')
    s.send(Buffer.alloc(64, 7), port, '127.0.0.1')
    await new Promise(resolve => setTimeout(resolve, 200))
    assert.equal(got.length, 0, 'no answer to a 20-byte request or to garbage')
    for (let i = 0; i < 200; i++) s.send(encodeRequest().bytes, port, '127.0.0.1')
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.ok(got.length > 0 && got.length <= 100, `${got.length} answers to 200 requests (cap 50 a second)`)
    assert.ok(got.every(m => decodeResponse(m) !== undefined))
    s.close()
    const text = await registry.getSingleMetricAsString('edgemesh_nat_reflector_requests_total')
    for (const result of ['answered', 'size', 'malformed', 'rate']) assert.match(text, new RegExp(`result="${result}"\\} [1-9]`), result)
  })

  test('a relay\'s UDP port taken by another process: the reflector warns and stays out of the way', async () => {
    const port = await freePort()
    const holder = dgram.createSocket('udp4')
    holder.bind(port, '127.0.0.1')
    await once(holder, 'listening')
    const lines: LogLine[] = []
    const r = new StunReflector({ logger: recordingLogger(lines), metrics }, { host: '127.0.0.1', port })
    await r.start()
    assert.equal(r.listening(), false)
    const warn = lines.find(l => l.level === 'warn' && l.msg.includes('nat reflector not listening'))
    assert.match(String((warn?.fields?.err as Error | undefined)?.message), /EADDRINUSE/)
    await r.stop()
    holder.close()
  })
})
