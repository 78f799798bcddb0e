// The cluster zone, table-driven: question in, records out (Kubernetes DNS spec).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { ClusterIndex, resolve, reverseNameToIP } from '../../../src/dns/resolver.ts'
import type { Resolution } from '../../../src/dns/resolver.ts'
import { TYPE } from '../../../src/dns/wire.ts'
import type { DnsRecord } from '../../../src/dns/wire.ts'
import { fixtureEntries, service, snapshotOf } from './fixtures.ts'

const index = new ClusterIndex(snapshotOf(fixtureEntries()), { zone: 'cluster.local', ttl: 30, nameserverIP: '169.254.96.16', serial: 7 })
const Z = 'cluster.local'

/** Compact view of a resolution: rcode, answer data, authority types. */
function view (r: Resolution): { rcode: number, answers: string[], authority: string[], additional: string[], chase?: string } | 'forward' {
  if (r.kind === 'forward') return 'forward'
  const text = (a: DnsRecord): string => `${a.type} ${typeof a.data === 'string' ? a.data : a.type === 'SRV' ? `${a.data.priority} ${a.data.weight} ${a.data.port} ${a.data.target}` : a.type === 'TXT' ? a.data.join(',') : a.data.mname}`
  return {
    rcode: r.rcode,
    answers: r.answers.map(text),
    authority: r.authorities.map(a => `${a.type} ${a.name}`),
    additional: r.additionals.map(a => `${a.name} ${text(a)}`),
    ...(r.chase === undefined ? {} : { chase: `${r.chase.name}/${r.chase.type}` })
  }
}

type View = ReturnType<typeof view>
const NXDOMAIN: View = { rcode: 3, answers: [], authority: [`SOA ${Z}`], additional: [] }
const NODATA: View = { rcode: 0, answers: [], authority: [`SOA ${Z}`], additional: [] }
const ok = (...answers: string[]): Exclude<View, 'forward'> => ({ rcode: 0, answers, authority: [], additional: [] })

const cases: Array<[string, number, View]> = [
  // ClusterIP services
  [`hostname-svc.default.svc.${Z}`, TYPE.A, ok('A 10.96.0.10')],
  [`hostname-svc.default.svc.${Z}`, TYPE.AAAA, NODATA],
  [`hostname-svc.default.svc.${Z}`, TYPE.TXT, NODATA],
  [`dual.default.svc.${Z}`, TYPE.A, ok('A 10.96.0.11')],
  [`dual.default.svc.${Z}`, TYPE.AAAA, ok('AAAA fd00:10:96::11')],
  [`dual.default.svc.${Z}`, TYPE.ANY, ok('A 10.96.0.11', 'AAAA fd00:10:96::11')],
  [`no-endpoints.default.svc.${Z}`, TYPE.A, ok('A 10.96.0.12')],
  // SRV: named ports, and the service name itself (every port)
  [`_http._tcp.hostname-svc.default.svc.${Z}`, TYPE.SRV, { rcode: 0, answers: [`SRV 0 100 12345 hostname-svc.default.svc.${Z}`], authority: [], additional: [`hostname-svc.default.svc.${Z} A 10.96.0.10`] }],
  [`_http._tcp.hostname-svc.default.svc.${Z}`, TYPE.A, NODATA],
  [`_http._udp.hostname-svc.default.svc.${Z}`, TYPE.SRV, NXDOMAIN],
  [`_nope._tcp.hostname-svc.default.svc.${Z}`, TYPE.SRV, NXDOMAIN],
  [`_tcp.hostname-svc.default.svc.${Z}`, TYPE.A, NODATA],
  [`_sctp.hostname-svc.default.svc.${Z}`, TYPE.A, NXDOMAIN],
  [`_dns._udp.dual.default.svc.${Z}`, TYPE.SRV, {
    rcode: 0,
    answers: [`SRV 0 100 53 dual.default.svc.${Z}`],
    authority: [],
    additional: [`dual.default.svc.${Z} A 10.96.0.11`, `dual.default.svc.${Z} AAAA fd00:10:96::11`]
  }],
  [`dual.default.svc.${Z}`, TYPE.SRV, {
    rcode: 0,
    answers: [`SRV 0 33 53 dual.default.svc.${Z}`, `SRV 0 33 53 dual.default.svc.${Z}`, `SRV 0 33 8080 dual.default.svc.${Z}`],
    authority: [],
    additional: [`dual.default.svc.${Z} A 10.96.0.11`, `dual.default.svc.${Z} AAAA fd00:10:96::11`]
  }],
  // Headless: ready endpoints only; per-endpoint names (hostname, else dashed address)
  [`headless.default.svc.${Z}`, TYPE.A, ok('A 10.244.1.10', 'A 10.244.2.11')],
  [`headless.default.svc.${Z}`, TYPE.AAAA, ok('AAAA fd00:244::10')],
  [`web-0.headless.default.svc.${Z}`, TYPE.A, ok('A 10.244.1.10')],
  [`web-0.headless.default.svc.${Z}`, TYPE.AAAA, ok('AAAA fd00:244::10')],
  [`10-244-2-11.headless.default.svc.${Z}`, TYPE.A, ok('A 10.244.2.11')],
  [`web-2.headless.default.svc.${Z}`, TYPE.A, NXDOMAIN],
  [`web-0.hostname-svc.default.svc.${Z}`, TYPE.A, NXDOMAIN],
  [`_http._tcp.headless.default.svc.${Z}`, TYPE.SRV, {
    rcode: 0,
    answers: [`SRV 0 50 9376 web-0.headless.default.svc.${Z}`, `SRV 0 50 9376 10-244-2-11.headless.default.svc.${Z}`],
    authority: [],
    additional: [
      `web-0.headless.default.svc.${Z} A 10.244.1.10`, `10-244-2-11.headless.default.svc.${Z} A 10.244.2.11`, `web-0.headless.default.svc.${Z} AAAA fd00:244::10`
    ]
  }],
  [`empty-headless.default.svc.${Z}`, TYPE.A, NODATA],
  // ExternalName: CNAME; chased upstream when outside the zone, internally when inside
  [`external.default.svc.${Z}`, TYPE.CNAME, ok('CNAME example.test')],
  [`external.default.svc.${Z}`, TYPE.A, { ...ok('CNAME example.test'), chase: `example.test/${TYPE.A}` }],
  [`alias.default.svc.${Z}`, TYPE.A, ok(`CNAME hostname-svc.default.svc.${Z}`, 'A 10.96.0.10')],
  // Names that do or do not exist
  [`nope.default.svc.${Z}`, TYPE.A, NXDOMAIN],
  [`default.svc.${Z}`, TYPE.A, NODATA],
  [`kube-system.svc.${Z}`, TYPE.A, NODATA],
  [`no-such-ns.svc.${Z}`, TYPE.A, NXDOMAIN],
  [`svc.${Z}`, TYPE.A, NODATA],
  [`a.b.hostname-svc.default.svc.${Z}`, TYPE.A, NXDOMAIN],
  [`whatever.${Z}`, TYPE.A, NXDOMAIN],
  // Zone apex, version, NS
  [Z, TYPE.SOA, { rcode: 0, answers: [`SOA ns.dns.${Z}`], authority: [], additional: [] }],
  [Z, TYPE.NS, { rcode: 0, answers: [`NS ns.dns.${Z}`], authority: [], additional: [`ns.dns.${Z} A 169.254.96.16`] }],
  [Z, TYPE.A, NODATA],
  [`ns.dns.${Z}`, TYPE.A, ok('A 169.254.96.16')],
  [`dns-version.${Z}`, TYPE.TXT, ok('TXT 1.1.0')],
  [`dns-version.${Z}`, TYPE.A, NODATA],
  // Pods (insecure, as upstream's Corefile)
  [`10-1-2-3.default.pod.${Z}`, TYPE.A, ok('A 10.1.2.3')],
  [`10-1-2-999.default.pod.${Z}`, TYPE.A, NXDOMAIN],
  // Reverse: ClusterIPs and headless endpoints; anything else forwarded
  ['10.0.96.10.in-addr.arpa', TYPE.PTR, ok(`PTR hostname-svc.default.svc.${Z}`)],
  ['10.1.244.10.in-addr.arpa', TYPE.PTR, ok(`PTR web-0.headless.default.svc.${Z}`)],
  ['11.2.244.10.in-addr.arpa', TYPE.PTR, ok(`PTR 10-244-2-11.headless.default.svc.${Z}`)],
  ['1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa', TYPE.PTR, ok(`PTR dual.default.svc.${Z}`)],
  ['10.0.96.10.in-addr.arpa', TYPE.A, { rcode: 0, answers: [], authority: ['SOA in-addr.arpa'], additional: [] }],
  ['12.3.244.10.in-addr.arpa', TYPE.PTR, 'forward'],
  ['5.1.244.10.in-addr.arpa', TYPE.PTR, 'forward'],
  ['96.10.in-addr.arpa', TYPE.PTR, 'forward'],
  ['8.8.8.8.in-addr.arpa', TYPE.PTR, 'forward'],
  // Outside the zone
  ['example.com', TYPE.A, 'forward'],
  ['cluster.local.example.com', TYPE.A, 'forward'],
  ['local', TYPE.SOA, 'forward']
]

describe('cluster zone resolver', () => {
  for (const [name, qtype, want] of cases) {
    test(`${name} type ${qtype}`, () => {
      assert.deepEqual(view(resolve(index, name, qtype)), want)
    })
  }

  test('TTL comes from the config; SOA carries it as minimum and the serial', () => {
    const idx = new ClusterIndex(snapshotOf(fixtureEntries()), { zone: 'corp.example', ttl: 5, nameserverIP: '169.254.96.16', serial: 42 })
    const r = resolve(idx, 'hostname-svc.default.svc.corp.example', TYPE.A)
    assert.equal(r.kind === 'answer' && r.answers[0]?.ttl, 5)
    const nx = resolve(idx, 'nope.default.svc.corp.example', TYPE.A)
    assert.ok(nx.kind === 'answer' && nx.authorities[0]?.type === 'SOA')
    assert.deepEqual(nx.kind === 'answer' && nx.authorities[0]?.type === 'SOA' && [nx.authorities[0].ttl, nx.authorities[0].data.minimum, nx.authorities[0].data.serial], [5, 5, 42])
    assert.equal(resolve(idx, `hostname-svc.default.svc.${Z}`, TYPE.A).kind, 'forward', 'another zone is not ours')
  })

  test('an ExternalName loop stops after a bounded number of hops', () => {
    const idx = new ClusterIndex(snapshotOf([
      service('default', 'a', { type: 'ExternalName', externalName: `b.default.svc.${Z}` }),
      service('default', 'b', { type: 'ExternalName', externalName: `a.default.svc.${Z}` })
    ]), { zone: Z, ttl: 30, nameserverIP: '169.254.96.16', serial: 1 })
    const r = resolve(idx, `a.default.svc.${Z}`, TYPE.A)
    assert.ok(r.kind === 'answer' && r.answers.length <= 10 && r.answers.every(a => a.type === 'CNAME'))
  })

  test('reverse names: full names only', () => {
    assert.equal(reverseNameToIP('4.3.2.1.in-addr.arpa'), '1.2.3.4')
    assert.equal(reverseNameToIP('3.2.1.in-addr.arpa'), undefined)
    assert.equal(reverseNameToIP('04.3.2.1.in-addr.arpa'), undefined)
    assert.equal(reverseNameToIP('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa'), '::1')
  })
})
