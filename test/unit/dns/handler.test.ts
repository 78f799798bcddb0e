// The query engine without sockets: wire details, caching, forwarding rules.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import dnsPacket from 'dns-packet'
import { Registry } from 'prom-client'
import { DnsHandler } from '../../../src/dns/handler.ts'
import type { Upstream } from '../../../src/dns/handler.ts'
import { DnsMetrics } from '../../../src/dns/metrics.ts'
import { PreparedAnswer } from '../../../src/dns/answer.ts'
import { DnsNoUpstreamError } from '../../../src/dns/errors.ts'
import { layoutReply, QueryParser, PARSE_OK } from '../../../src/dns/wire.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { FakeServiceMap, endpoint, fixtureEntries, service } from './fixtures.ts'

type Q = Parameters<typeof dnsPacket.encode>[0]

function query (name: string, type: dnsPacket.RecordType = 'A', extra: Partial<Q> = {}): Buffer {
  return dnsPacket.encode({ id: 0x1234, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }], ...extra })
}

const EDNS = { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as dnsPacket.Answer] }

/** An upstream twin: answers A for *.example.test from a table, NXDOMAIN with SOA otherwise; counts calls. */
class FakeUpstream implements Upstream {
  calls: string[] = []
  ttl = 300
  fail = false
  async exchange (name: string, qtype: number): Promise<Buffer> {
    this.calls.push(`${name}/${qtype}`)
    if (this.fail) throw new DnsNoUpstreamError('test')
    const known = name.endsWith('example.test')
    return dnsPacket.encode({
      id: 1,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3),
      questions: [{ type: 'A', name }],
      answers: known && qtype === 1 ? [{ type: 'A', name, ttl: this.ttl, data: '192.0.2.7' }] : [],
      authorities: known ? [] : [{ type: 'SOA', name: 'test', ttl: 60, data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 20 } }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer]
    })
  }
}

const clock = { now: 1_000_000 }

function setup (map = new FakeServiceMap(), init: Partial<ConstructorParameters<typeof DnsHandler>[1]> = {}): { h: DnsHandler, up: FakeUpstream, map: FakeServiceMap, registry: Registry } {
  const up = new FakeUpstream()
  const registry = new Registry()
  const h = new DnsHandler({ logger: noopLogger, metrics: new DnsMetrics(registry), serviceMap: map, upstream: up, clock: () => clock.now },
    { zone: 'cluster.local', ttl: 30, nameserverIP: '169.254.96.16', ...init })
  return { h, up, map, registry }
}

interface Rec { name: string, type: string, ttl: number, data: unknown, extendedRcode?: number }
interface Decoded {
  id: number
  rcode: string
  flag_qr: boolean
  flag_aa: boolean
  flag_tc: boolean
  flag_rd: boolean
  flag_ra: boolean
  questions: Array<{ name: string, type: string }>
  answers: Rec[]
  authorities: Rec[]
  additionals: Rec[]
  raw: Buffer
}

/** dns-packet's decoded shape, typed loosely enough for assertions. */
function decode (b: Buffer): Decoded {
  return { ...(dnsPacket.decode(b) as unknown as Decoded), raw: b }
}

async function ask (h: DnsHandler, msg: Buffer, tcp = false): Promise<Decoded> {
  const r = await h.respond(msg, tcp)
  assert.ok(r !== undefined, 'expected a reply')
  return decode(r)
}

describe('DnsHandler', () => {
  test('answers from the cluster zone with the client ID, RD and letter case; AA set', async () => {
    const { h } = setup()
    const first = await ask(h, query('HostName-Svc.Default.svc.cluster.local'))
    assert.equal(first.id, 0x1234)
    assert.deepEqual([first.flag_qr, first.flag_aa, first.flag_rd, first.flag_ra, first.rcode], [true, true, true, true, 'NOERROR'])
    assert.equal(first.questions[0]?.name, 'HostName-Svc.Default.svc.cluster.local')
    assert.deepEqual(first.answers.map(a => [a.name, a.type, a.ttl, a.data]), [['HostName-Svc.Default.svc.cluster.local', 'A', 30, '10.96.0.10']])
    // Second time from the pre-encoded reply, synchronously.
    const q2 = query('hostname-svc.default.svc.cluster.local', 'A', { id: 99, flags: 0 })
    const sync = h.respond(q2, false)
    assert.ok(sync instanceof Uint8Array, 'cached answers are synchronous')
    const d = decode(sync)
    assert.deepEqual([d.id, d.flag_rd, d.answers[0]?.data], [99, false, '10.96.0.10'])
  })

  test('EDNS: OPT in the reply only when the query had one', async () => {
    const { h } = setup()
    const plain = await ask(h, query('hostname-svc.default.svc.cluster.local'))
    assert.equal(plain.additionals.length, 0)
    const edns = await ask(h, query('hostname-svc.default.svc.cluster.local', 'A', EDNS))
    assert.equal(edns.additionals[0]?.type, 'OPT')
  })

  test('truncation: over 512 bytes without EDNS sets TC with no records; EDNS size honoured; TCP gets everything', async () => {
    const many = Array.from({ length: 40 }, (_, i) => endpoint(`10.250.${i}.1`, { hostname: `p-${i}` }))
    const { h } = setup(new FakeServiceMap([...fixtureEntries(), service('default', 'big', { headless: true, ports: [{ name: 'http', protocol: 'TCP', port: 80 }] }, many.map(e => ({ ...e, ports: [{ name: 'http', protocol: 'TCP', port: 80 }] })))]))
    const name = '_http._tcp.big.default.svc.cluster.local'
    const udp = await ask(h, query(name, 'SRV'))
    assert.equal(udp.flag_tc, true)
    assert.equal(udp.answers.length, 0)
    assert.ok(udp.raw.length <= 512)
    const small = await ask(h, query(name, 'SRV', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1000 } as dnsPacket.Answer] }))
    assert.equal(small.flag_tc, true)
    const large = await ask(h, query(name, 'SRV', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer] }))
    assert.equal(large.flag_tc, false)
    assert.equal(large.answers.length, 40)
    const tcp = await ask(h, query(name, 'SRV'), true)
    assert.equal(tcp.flag_tc, false)
    assert.equal(tcp.answers.length, 40)
    assert.equal(tcp.additionals.length, 40)
  })

  test('malformed: short packets and responses are dropped; bad bodies FORMERR; other opcodes NOTIMP; EDNS version 1 BADVERS', async () => {
    const { h } = setup()
    assert.equal(h.respond(Buffer.from([1, 2, 3]), false), undefined)
    const response = query('x.example.test')
    response[2] = (response[2] as number) | 0x80
    assert.equal(h.respond(response, false), undefined, 'a response is never answered')
    const cut = query('hostname-svc.default.svc.cluster.local').subarray(0, 20)
    const formerr = await ask(h, cut)
    assert.deepEqual([formerr.id, formerr.rcode, formerr.questions.length], [0x1234, 'FORMERR', 0])
    const two = dnsPacket.encode({ id: 5, questions: [{ type: 'A', name: 'a.test' }, { type: 'A', name: 'b.test' }] })
    assert.equal((await ask(h, two)).rcode, 'FORMERR')
    const notify = query('cluster.local', 'SOA')
    notify[2] = ((notify[2] as number) & 0x87) | (4 << 3)
    assert.equal((await ask(h, notify)).rcode, 'NOTIMP')
    const v1 = query('hostname-svc.default.svc.cluster.local')
    const opt = Buffer.from([0, 0, 41, 4, 0, 0, 1, 0, 0, 0, 0])
    const withV1 = Buffer.concat([v1, opt])
    withV1.writeUInt16BE(1, 10)
    const bad = await ask(h, withV1)
    assert.equal(bad.additionals[0]?.extendedRcode, 1, 'BADVERS is rcode 16: 1 in the OPT upper bits')
  })

  test('forwarded names: cached with TTL, coalesced while in flight, negative answers cached by SOA minimum', async () => {
    const { h, up, registry } = setup()
    const [a, b] = await Promise.all([ask(h, query('www.example.test')), ask(h, query('WWW.example.test'))])
    assert.equal(up.calls.length, 1, 'two concurrent queries, one exchange')
    assert.deepEqual([a.answers[0]?.data, b.answers[0]?.data, a.flag_aa, a.flag_ra], ['192.0.2.7', '192.0.2.7', false, true])
    assert.equal(b.questions[0]?.name, 'WWW.example.test')
    const hit = h.respond(query('www.example.test'), false)
    assert.ok(hit instanceof Uint8Array, 'cache hit is synchronous')
    const nx = await ask(h, query('nothing.invalid'))
    assert.equal(nx.rcode, 'NXDOMAIN')
    assert.ok(h.respond(query('nothing.invalid'), false) instanceof Uint8Array, 'negative answer cached')
    assert.equal(up.calls.length, 2)
    const text = await registry.metrics()
    assert.match(text, /edgemesh_dns_cache_hits_total 2/)
    assert.match(text, /edgemesh_dns_queries_total\{protocol="udp",type="A",rcode="NXDOMAIN"\} 2/)
  })

  test('forwarded answers expire with their TTL; popular ones are refreshed in the background first', async () => {
    const { h, up } = setup()
    up.ttl = 10
    await ask(h, query('www.example.test'))
    clock.now += 7_000
    assert.ok(h.respond(query('www.example.test'), false) instanceof Uint8Array)
    assert.equal(up.calls.length, 1, 'no refresh before 80 % of the TTL')
    clock.now += 2_000
    const hit = h.respond(query('www.example.test'), false)
    assert.ok(hit instanceof Uint8Array, 'still served from the cache while refreshing')
    assert.equal(decode(hit).answers[0]?.ttl, 1, 'TTL counted down')
    assert.equal(up.calls.length, 2, 'refresh started at 90 % of the TTL')
    h.respond(query('www.example.test'), false)
    assert.equal(up.calls.length, 2, 'one refresh at a time')
    await h.respond(query('other.example.test'), false)
    clock.now += 5_000
    assert.ok(h.respond(query('www.example.test'), false) instanceof Uint8Array, 'the refreshed answer is live past the first expiry')
    clock.now += 20_000
    const expired = h.respond(query('other.example.test'), false)
    assert.ok(expired instanceof Promise, 'an expired entry goes upstream again')
    await expired
  })

  test('cache TTL is capped by maxCacheTtl; 0 disables caching', async () => {
    const { h, up } = setup(undefined, { maxCacheTtl: 0 })
    await ask(h, query('www.example.test'))
    await ask(h, query('www.example.test'))
    assert.equal(up.calls.length, 2)
  })

  test('upstream failure → SERVFAIL (not cached); ExternalName chased upstream', async () => {
    const { h, up } = setup()
    up.fail = true
    const r = await ask(h, query('down.example.test', 'A', EDNS))
    assert.equal(r.rcode, 'SERVFAIL')
    assert.equal(r.questions[0]?.name, 'down.example.test')
    assert.equal(r.additionals[0]?.type, 'OPT')
    up.fail = false
    const chased = await ask(h, query('external.default.svc.cluster.local'))
    assert.deepEqual(chased.answers.map(a => [a.type, a.data]), [['CNAME', 'example.test'], ['A', '192.0.2.7']])
    const s2 = setup(new FakeServiceMap([service('default', 'gone', { type: 'ExternalName', externalName: 'gone.invalid' })]))
    const nx = await ask(s2.h, query('gone.default.svc.cluster.local'))
    assert.deepEqual([nx.rcode, nx.answers.map(a => a.type)], ['NXDOMAIN', ['CNAME']])
  })

  test('before the service map syncs, cluster names are SERVFAIL (never a cached NXDOMAIN); then they resolve', async () => {
    const map = new FakeServiceMap(fixtureEntries(), false)
    const { h } = setup(map)
    assert.equal((await ask(h, query('hostname-svc.default.svc.cluster.local'))).rcode, 'SERVFAIL')
    map.set(fixtureEntries(), true)
    h.invalidate()
    assert.equal((await ask(h, query('hostname-svc.default.svc.cluster.local'))).answers[0]?.data, '10.96.0.10')
  })

  test('a service map change invalidates cached cluster answers and forwarded reverse answers', async () => {
    const { h, map, up } = setup()
    assert.equal((await ask(h, query('new.default.svc.cluster.local'))).rcode, 'NXDOMAIN')
    await ask(h, query('20.0.96.10.in-addr.arpa', 'PTR'))
    assert.equal(up.calls.length, 1, 'unknown reverse name forwarded')
    map.set([...fixtureEntries(), service('default', 'new', { clusterIPs: ['10.96.0.20'] })])
    h.invalidate()
    assert.equal((await ask(h, query('new.default.svc.cluster.local'))).answers[0]?.data, '10.96.0.20')
    assert.equal((await ask(h, query('20.0.96.10.in-addr.arpa', 'PTR'))).answers[0]?.data, 'new.default.svc.cluster.local')
  })

  test('cacheDNS mode forwards the cluster zone too', async () => {
    const { h, up } = setup(undefined, { forwardAll: true })
    await ask(h, query('hostname-svc.default.svc.cluster.local'))
    assert.deepEqual(up.calls, ['hostname-svc.default.svc.cluster.local/1'])
  })
})

describe('PreparedAnswer', () => {
  test('forwarded replies age their TTLs and drop the upstream OPT', () => {
    const reply = dnsPacket.encode({
      id: 9,
      type: 'response',
      questions: [{ type: 'A', name: 'a.test' }],
      answers: [{ type: 'A', name: 'a.test', ttl: 100, data: '192.0.2.1' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer]
    })
    const layout = layoutReply(reply)
    assert.ok(layout !== undefined)
    const a = PreparedAnswer.forwarded(reply, layout, 1000, 100_000)
    const q = query('A.test')
    const p = new QueryParser()
    assert.equal(p.parse(q), PARSE_OK)
    const later = decode(a.write(q, p.qEnd, false, 512, 1000 + 41_500))
    assert.deepEqual([later.answers[0]?.ttl, later.additionals.length, later.questions[0]?.name], [59, 0, 'A.test'])
    const expired = decode(a.write(q, p.qEnd, false, 512, 1000 + 500_000))
    assert.equal(expired.answers[0]?.ttl, 0)
  })
})
