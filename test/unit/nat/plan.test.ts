import { test } from 'node:test'
import assert from 'node:assert/strict'
import { punchPlan, tcpPunchPlan, udpBlocked } from '../../../src/nat/plan.ts'
import type { PeerNat, TcpMapping } from '../../../src/nat/plan.ts'

const CANDIDATES = [{ host: '198.51.100.1', port: 40000 }]

function nat (kind: PeerNat['kind'], over: Partial<PeerNat> = {}): PeerNat {
  return { kind, portPreserved: kind !== 'symmetric', filtering: 'port-dependent', candidates: CANDIDATES, public: ['198.51.100.1'], ...over }
}

test('cone and public pairs probe candidates only', () => {
  for (const [a, b] of [['cone', 'cone'], ['public', 'cone'], ['cone', 'public'], ['unknown', 'cone']] as const) {
    assert.deepEqual(punchPlan(nat(a), nat(b)), { candidates: CANDIDATES, manySockets: false, sprayHosts: [] }, `${a}/${b}`)
  }
})

test('symmetric against a port-restricted cone: the symmetric side opens many sockets, the cone side sprays', () => {
  assert.deepEqual(punchPlan(nat('symmetric'), nat('cone')), { candidates: CANDIDATES, manySockets: true, sprayHosts: [] })
  assert.deepEqual(punchPlan(nat('cone'), nat('symmetric', { public: ['203.0.113.2'] })), { candidates: CANDIDATES, manySockets: false, sprayHosts: ['203.0.113.2'] })
})

test('a cone that admits any port of an address needs no birthday probing', () => {
  const open = nat('cone', { filtering: 'port-independent' })
  assert.deepEqual(punchPlan(nat('symmetric'), open), { candidates: CANDIDATES, manySockets: false, sprayHosts: [] })
  assert.deepEqual(punchPlan(open, nat('symmetric')), { candidates: CANDIDATES, manySockets: false, sprayHosts: [] })
  assert.deepEqual(punchPlan(nat('symmetric'), nat('public')), { candidates: CANDIDATES, manySockets: false, sprayHosts: [] })
})

test('a symmetric NAT keeping ports is punched as a cone', () => {
  assert.deepEqual(punchPlan(nat('symmetric', { portPreserved: true }), nat('symmetric', { portPreserved: true })), { candidates: CANDIDATES, manySockets: false, sprayHosts: [] })
})

test('a port the router mapped: punched as a public node; the mapped side probes only the peer\'s mapped port, else just answers', () => {
  const mapped = { host: '198.51.100.9', port: 41000 }
  // Two symmetric NATs, one with a mapping: no birthday probing either way.
  assert.deepEqual(punchPlan(nat('symmetric'), nat('symmetric', { routerMapping: mapped })), { candidates: CANDIDATES, manySockets: false, sprayHosts: [] })
  assert.deepEqual(punchPlan(nat('symmetric', { routerMapping: mapped }), nat('symmetric')), { candidates: [], manySockets: false, sprayHosts: [] })
  assert.deepEqual(punchPlan(nat('cone', { routerMapping: mapped }), nat('cone', { routerMapping: { host: '203.0.113.7', port: 42000 } })), { candidates: [{ host: '203.0.113.7', port: 42000 }], manySockets: false, sprayHosts: [] })
})

test('pairs that cannot punch are refused with the reason', () => {
  assert.match((punchPlan(nat('symmetric'), nat('symmetric')) as { refuse: string }).refuse, /both .* symmetric/)
  assert.match((punchPlan(nat('udp-blocked'), nat('cone')) as { refuse: string }).refuse, /blocked at this node/)
  assert.match((punchPlan(nat('cone'), nat('udp-blocked')) as { refuse: string }).refuse, /blocked at the peer/)
  assert.match((punchPlan(nat('cone'), nat('cone', { candidates: [], public: [] })) as { refuse: string }).refuse, /no candidate/)
})

function tcp (host: string, preserved: boolean): TcpMapping {
  return { localPort: 40000, public: { host, port: preserved ? 40000 : 51234 }, preserved }
}

test('TCP: both ports kept, each side connects from its port to the peer\'s public endpoint', () => {
  assert.deepEqual(tcpPunchPlan(tcp('198.51.100.1', true), tcp('203.0.113.2', true)), { targets: [{ host: '203.0.113.2', port: 40000 }], extraSockets: 0 })
})

test('TCP: random ports here, kept at the peer: 256 extra sockets to the peer\'s public endpoint', () => {
  assert.deepEqual(tcpPunchPlan(tcp('198.51.100.1', false), tcp('203.0.113.2', true)), { targets: [{ host: '203.0.113.2', port: 40000 }], extraSockets: 256 })
})

test('TCP: kept here, random at the peer: SYNs sprayed at the peer\'s public host, no fixed target', () => {
  assert.deepEqual(tcpPunchPlan(tcp('198.51.100.1', true), tcp('203.0.113.2', false)), { targets: [], extraSockets: 0, sprayHost: '203.0.113.2' })
})

test('TCP: random ports on both sides is refused with the reason', () => {
  const plan = tcpPunchPlan(tcp('198.51.100.1', false), tcp('203.0.113.2', false))
  assert.ok('refuse' in plan, 'refused')
  assert.match(plan.refuse, /random/)
})

test('udpBlocked: only a refusal because UDP is blocked (either side) lets TCP try', () => {
  assert.equal(udpBlocked(punchPlan(nat('udp-blocked'), nat('cone'))), true)
  assert.equal(udpBlocked(punchPlan(nat('cone'), nat('udp-blocked'))), true)
  assert.equal(udpBlocked(punchPlan(nat('symmetric'), nat('symmetric'))), false)
  assert.equal(udpBlocked(punchPlan(nat('cone'), nat('cone', { candidates: [], public: [] }))), false)
  assert.equal(udpBlocked(punchPlan(nat('cone'), nat('cone'))), false)
})
