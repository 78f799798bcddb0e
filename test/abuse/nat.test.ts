// The relay's STUN reflector (UDP listenPort) under a flood from many sources
// (127.0.0.0/8 stands in for spoofed ones) of garbage, short requests and valid
// ones (one source over its cap: test/integration/nat). It never sends more
// bytes than it received, keeps to its caps, and still answers a real client
// afterwards.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { Registry } from 'prom-client'
import { NatDiscovery, NatMetrics, StunReflector, encodeRequest } from '../../src/nat/index.ts'
import { noopLogger } from '../../src/observability/logger.ts'

const PER_SOURCE = 20
const TOTAL = 2000

async function socketOn (address: string): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4')
  s.bind(0, address)
  await once(s, 'listening')
  return s
}

describe('STUN reflector under abuse', () => {
  let reflector: StunReflector
  let port: number

  before(async () => {
    const probe = await socketOn('127.0.0.1')
    port = probe.address().port
    probe.close()
    reflector = new StunReflector({ logger: noopLogger, metrics: new NatMetrics(new Registry()) }, { host: '127.0.0.1', port, perSourcePerSecond: PER_SOURCE, totalPerSecond: TOTAL })
    await reflector.start()
  })

  after(async () => { await reflector.stop() })

  test('a flood from 200 sources (valid, garbage and short requests): answers within the caps, never more bytes out than in; a client is answered afterwards', async () => {
    const sockets = await Promise.all(Array.from({ length: 200 }, async (_, i) => await socketOn(`127.0.${1 + (i >> 8)}.${(i & 255) + 1}`)))
    let bytesIn = 0
    let bytesOut = 0
    let answers = 0
    for (const s of sockets) s.on('message', m => { bytesOut += m.length; answers++ })
    const started = performance.now()
    // Within one second: 50 valid requests from each source, plus garbage and 20-byte requests.
    for (let round = 0; round < 50; round++) {
      for (const s of sockets) {
        const valid = encodeRequest().bytes
        const junk = round % 2 === 0 ? randomBytes(40) : valid.subarray(0, 20)
        bytesIn += valid.length + junk.length
        s.send(valid, port, '127.0.0.1')
        s.send(junk, port, '127.0.0.1')
      }
      await new Promise(resolve => setImmediate(resolve))
    }
    await new Promise(resolve => setTimeout(resolve, 500))
    const seconds = Math.ceil((performance.now() - started) / 1000)
    assert.ok(bytesOut <= bytesIn, `${bytesOut} bytes out for ${bytesIn} in`)
    assert.ok(answers <= Math.min(TOTAL, PER_SOURCE * sockets.length) * (seconds + 1), `${answers} answers in ${seconds} s`)
    assert.ok(answers > 0, 'valid requests within the caps are answered')
    for (const s of sockets) s.close()
    await new Promise(resolve => setTimeout(resolve, 1100))
    const r = await new NatDiscovery({ logger: noopLogger, metrics: new NatMetrics(new Registry()) }, { relays: [{ nodeName: 'r', addresses: [{ host: '127.0.0.1', port }] }], localAddresses: () => ['127.0.0.1'] }).check()
    assert.equal(r.kind, 'public', 'the reflector still answers once the flood is over')
  })
})
