// Random and mutated packets into the query engine: it must never throw, and
// every reply it sends must be a well-formed DNS message echoing the query ID.
// FUZZ_PACKETS (default 1e6) and FUZZ_SEED pick the run; see src/dns/README.md.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import dnsPacket from 'dns-packet'
import { Registry } from 'prom-client'
import { DnsHandler } from '../../../src/dns/handler.ts'
import { DnsMetrics } from '../../../src/dns/metrics.ts'
import { DnsNoUpstreamError } from '../../../src/dns/errors.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { FakeServiceMap } from './fixtures.ts'

const COUNT = Number(process.env.FUZZ_PACKETS ?? 1_000_000)
const SEED = Number(process.env.FUZZ_SEED ?? 20261123)

/** xorshift32: fast, deterministic, good enough to spread bytes. */
function rng (seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x
  }
}

const NAMES = [
  'hostname-svc.default.svc.cluster.local', '_http._tcp.headless.default.svc.cluster.local', 'web-0.headless.default.svc.cluster.local',
  'external.default.svc.cluster.local', '10.0.96.10.in-addr.arpa', 'example.test', 'cluster.local', 'dns-version.cluster.local'
]
const TYPES = ['A', 'AAAA', 'SRV', 'PTR', 'TXT', 'CNAME', 'SOA', 'NS', 'MX', 'HTTPS'] as dnsPacket.RecordType[]

test(`fuzz: ${COUNT} random and mutated packets (seed ${SEED})`, { timeout: 600_000 }, async () => {
  const next = rng(SEED)
  const handler = new DnsHandler({
    logger: noopLogger,
    metrics: new DnsMetrics(new Registry()),
    serviceMap: new FakeServiceMap(),
    upstream: { exchange: async () => { throw new DnsNoUpstreamError('fuzz') } }
  }, { zone: 'cluster.local', ttl: 30, nameserverIP: '169.254.96.16', maxEntries: 5000 })
  const seeds = NAMES.flatMap(name => TYPES.map(type => dnsPacket.encode({
    id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type }], additionals: next() % 2 === 0 ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as dnsPacket.Answer]
  })))
  const stats = { replies: 0, dropped: 0, async: 0 }
  const check = (input: Buffer, out: Buffer | undefined): void => {
    if (out === undefined) { stats.dropped++; return }
    stats.replies++
    assert.ok(out.length >= 12 && out.length <= 65535)
    assert.equal(out.readUInt16BE(0), input.readUInt16BE(0), 'reply echoes the ID')
    assert.ok(((out[2] as number) & 0x80) !== 0, 'reply has QR')
    // Every 16th reply is fully decoded (decoding all would dominate the run time).
    if ((stats.replies & 15) === 0) dnsPacket.decode(out)
  }
  let pending: Array<Promise<void>> = []
  for (let i = 0; i < COUNT; i++) {
    const r = next()
    let pkt: Buffer
    if (r % 4 === 0) {
      // Pure noise, mostly short.
      pkt = Buffer.allocUnsafe(next() % (r % 8 === 0 ? 600 : 64))
      for (let k = 0; k < pkt.length; k++) pkt[k] = next() & 0xff
    } else {
      const base = seeds[next() % seeds.length] as Buffer
      pkt = Buffer.from(base)
      const flips = 1 + (next() % 4)
      for (let f = 0; f < flips; f++) pkt[next() % pkt.length] = next() & 0xff
      if (r % 4 === 2) pkt = pkt.subarray(0, next() % (pkt.length + 1))
      if (r % 4 === 3) pkt = Buffer.concat([pkt, Buffer.from([next() & 0xff, next() & 0xff, next() & 0x3f])])
      pkt[2] = (pkt[2] as number) & 0x7f // keep most of them queries
    }
    const reply = handler.respond(pkt, (r & 0x100) !== 0)
    if (reply instanceof Promise) {
      stats.async++
      pending.push(reply.then(out => check(pkt, out)))
      if (pending.length >= 2000) { await Promise.all(pending); pending = [] }
    } else {
      check(pkt, reply)
    }
  }
  await Promise.all(pending)
  assert.equal(handler.pending, 0)
  assert.ok(stats.replies > COUNT / 4 && stats.dropped > 0, JSON.stringify(stats))
})
