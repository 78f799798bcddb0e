import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConsistentHashPolicy, HashRing, ringMemberName } from '../../../src/loadbalancer/consistent-hash.ts'
import { ep, eps, seeded } from './fixtures.ts'

// Pins produced by github.com/buraksezer/consistent v0.9.0 + github.com/cespare/xxhash/v2 v2.1.2
// (the libraries upstream EdgeMesh uses), with a small Go program printing
// LocateKey results and GetPartitionOwner for every partition (owners as member indexes).
const RING_PINS = [
  {
    name: 'upstream defaults, three named pods',
    config: { partitionCount: 100, replicationFactor: 10, load: 1.25 },
    members: ['n1:web-1:10.0.0.1:8080', 'n1:web-2:10.0.0.2:8080', 'n2:web-3:10.0.0.3:8080'],
    owners: '1120101220220111201012111120022212121200110202111110211112101011011111102110211012202020202202200220',
    loads: [27, 42, 31],
    keys: { '': 2, alice: 0, bob: 0, carol: 1, '10.1.2.3': 2, '10.1.2.3:40000': 1, 'user-42': 1 }
  },
  {
    name: 'upstream defaults, five endpoints without node or pod names',
    config: { partitionCount: 100, replicationFactor: 10, load: 1.25 },
    members: [1, 2, 3, 4, 5].map(i => `EMPTY_NODE_NAME:EMPTY_POD_NAME:10.0.0.${i}:80`),
    owners: '3230203140332124323434133342204333213402321141223210043331323043002111042412033142440402142042211200',
    loads: [17, 17, 23, 25, 18],
    keys: { '': 4, alice: 4, bob: 2, carol: 3, '10.1.2.3': 1, '10.1.2.3:40000': 3, 'user-42': 1 }
  },
  {
    name: 'small ring, IPv6 member, tight load',
    config: { partitionCount: 23, replicationFactor: 3, load: 1.1 },
    members: ['n1:p1:[fd00::1]:80', 'n1:p2:10.1.0.2:80', 'EMPTY_NODE_NAME:EMPTY_POD_NAME:10.1.0.3:80', 'n3:p4:10.1.0.4:80'],
    owners: '23332333101101201020122',
    loads: undefined,
    keys: { '': 2, k1: 3, k2: 1, k3: 2 }
  }
]

test('ring: same partition owners and key locations as upstream (buraksezer/consistent + xxhash)', () => {
  for (const pin of RING_PINS) {
    // insertion order must not matter (upstream builds incrementally)
    for (const members of [pin.members, [...pin.members].reverse()]) {
      const ring = new HashRing(members, pin.config)
      const owners = Array.from({ length: pin.config.partitionCount }, (_, p) => pin.members.indexOf(ring.owner(p) as string)).join('')
      assert.equal(owners, pin.owners, pin.name)
      for (const [key, idx] of Object.entries(pin.keys)) assert.equal(ring.locate(key), pin.members[idx], `${pin.name}: ${JSON.stringify(key)}`)
      if (pin.loads !== undefined) assert.deepEqual(pin.members.map(m => ring.loads().get(m)), pin.loads, pin.name)
    }
  }
})

test('ring: member names follow upstream (nodeName:podName:ip:port, placeholders, bracketed IPv6)', () => {
  const cases: Array<[Parameters<typeof ep>, string, string]> = [
    [['10.0.0.1', { nodeName: 'n1', podName: 'web-1', port: 8080, portName: 'http' }], 'http', 'n1:web-1:10.0.0.1:8080'],
    [['10.0.0.1', { port: 80 }], '', 'EMPTY_NODE_NAME:EMPTY_POD_NAME:10.0.0.1:80'],
    [['fd00::1', { nodeName: 'n1', podName: 'p1', port: 80 }], '', 'n1:p1:[fd00::1]:80']
  ]
  for (const [args, portName, want] of cases) assert.equal(ringMemberName(ep(...args), portName), want)
})

test('ring: bounded load holds and every partition has an owner', () => {
  const rnd = seeded(5)
  const configs = [
    { partitionCount: 100, replicationFactor: 10, load: 1.25 },
    { partitionCount: 271, replicationFactor: 20, load: 1.1 },
    { partitionCount: 7, replicationFactor: 2, load: 1.25 }
  ]
  for (const config of configs) {
    for (const n of [1, 2, 3, 7]) {
      if (n > config.partitionCount) continue
      const members = Array.from({ length: n }, (_, i) => `node-${Math.floor(rnd() * 1e6)}:pod-${i}:10.0.${i}.1:80`)
      const ring = new HashRing(members, config)
      let total = 0
      for (const [m, load] of ring.loads()) {
        assert.ok(load <= ring.averageLoad(), `${m} load ${load} > bound ${ring.averageLoad()} (${JSON.stringify(config)}, n=${n})`)
        total += load
      }
      assert.equal(total, config.partitionCount)
      for (let p = 0; p < config.partitionCount; p++) assert.ok(members.includes(ring.owner(p) as string))
    }
  }
})

test('ring: where upstream panics, partitions still get an owner', () => {
  // one member, one point: upstream scans zero points and panics ("not enough room")
  const single = new HashRing(['a:b:10.0.0.1:80'], { partitionCount: 10, replicationFactor: 1, load: 1.25 })
  assert.equal(single.loads().get('a:b:10.0.0.1:80'), 10)
  // more members than partitions: the bound is 0 in upstream
  const crowded = new HashRing(['a', 'b', 'c', 'd', 'e'], { partitionCount: 3, replicationFactor: 2, load: 1.25 })
  assert.equal([...crowded.loads().values()].reduce((s, v) => s + v, 0), 3)
  // bound × members < partitions (ceil(3 × 1) × 2 = 6 < 7): upstream panics, here the last partition overflows
  const tight = new HashRing(['a', 'b'], { partitionCount: 7, replicationFactor: 2, load: 1 })
  assert.deepEqual([...tight.loads().values()].sort(), [3, 4])
  assert.equal(new HashRing([], { partitionCount: 3, replicationFactor: 2, load: 1.25 }).locate('x'), undefined)
})

test('ring: removing a member moves few keys', () => {
  const members = Array.from({ length: 8 }, (_, i) => `n:p:10.0.0.${i}:80`)
  const before = new HashRing(members)
  const after = new HashRing(members.slice(1))
  let moved = 0
  for (let p = 0; p < 100; p++) if (before.owner(p) !== members[0] && before.owner(p) !== after.owner(p)) moved++
  // bounded loads move a few extra partitions, far from a reshuffle
  assert.ok(moved < 40, `moved ${moved}`)
})

test('CONSISTENT_HASH by header: same key → same endpoint, matching the upstream ring', () => {
  const list = [
    ep('10.0.0.1', { nodeName: 'n1', podName: 'web-1', port: 8080, portName: 'http' }),
    ep('10.0.0.2', { nodeName: 'n1', podName: 'web-2', port: 8080, portName: 'http' }),
    ep('10.0.0.3', { nodeName: 'n2', podName: 'web-3', port: 8080, portName: 'http' })
  ]
  const p = new ConsistentHashPolicy({ key: { type: 'header', name: 'x-user' }, portName: 'http' })
  const header = (v: string) => (name: string) => name === 'x-user' ? v : undefined
  const cases: Array<[string, string]> = [['alice', '10.0.0.1'], ['bob', '10.0.0.1'], ['carol', '10.0.0.2'], ['user-42', '10.0.0.2']]
  for (const [v, want] of cases) {
    assert.equal(p.pick(list, { header: header(v) })?.ip, want, v)
    assert.equal(p.pick([...list].reverse(), { header: header(v) })?.ip, want, `${v} (reordered list)`)
  }
  assert.equal(p.keyValue({ header: header('alice') }), 'alice')
})

test('CONSISTENT_HASH by source IP: the IP by default, ip:port in upstream-compatible mode', () => {
  const list = [
    ep('10.0.0.1', { nodeName: 'n1', podName: 'web-1', port: 8080 }),
    ep('10.0.0.2', { nodeName: 'n1', podName: 'web-2', port: 8080 }),
    ep('10.0.0.3', { nodeName: 'n2', podName: 'web-3', port: 8080 })
  ]
  const byIp = new ConsistentHashPolicy({ key: { type: 'sourceIp' } })
  const byIpPort = new ConsistentHashPolicy({ key: { type: 'sourceIp', withPort: true } })
  assert.equal(byIp.keyValue({ clientIP: '10.1.2.3', clientPort: 40000 }), '10.1.2.3')
  assert.equal(byIpPort.keyValue({ clientIP: '10.1.2.3', clientPort: 40000 }), '10.1.2.3:40000')
  assert.equal(byIpPort.keyValue({ clientIP: 'fd00::9', clientPort: 1 }), '[fd00::9]:1')
  // pins: "10.1.2.3" → web-3, "10.1.2.3:40000" → web-2 (upstream ring)
  for (const port of [1, 2, 40000]) assert.equal(byIp.pick(list, { clientIP: '10.1.2.3', clientPort: port })?.ip, '10.0.0.3')
  assert.equal(byIpPort.pick(list, { clientIP: '10.1.2.3', clientPort: 40000 })?.ip, '10.0.0.2')
})

test('CONSISTENT_HASH by cookie, and a missing key', () => {
  const list = eps(3)
  const p = new ConsistentHashPolicy({ key: { type: 'cookie', name: 'session' }, fallback: { name: 'FAKE', pick: () => list[2] } })
  const first = p.pick(list, { cookie: n => n === 'session' ? 's-1' : undefined })
  for (let i = 0; i < 10; i++) assert.equal(p.pick(list, { cookie: n => n === 'session' ? 's-1' : undefined }), first)
  // no cookie → the fallback policy
  assert.equal(p.pick(list, { cookie: () => undefined })?.ip, '10.0.0.3')
  // upstream mode: a missing key hashes "" (pin: "" → the third of the upstream-defaults five)
  const five = [1, 2, 3, 4, 5].map(i => ep(`10.0.0.${i}`, { port: 80 }))
  const upstreamish = new ConsistentHashPolicy({ key: { type: 'header', name: 'x' }, missingKey: 'hash-empty' })
  assert.equal(upstreamish.pick(five, {})?.ip, '10.0.0.5')
})

test('CONSISTENT_HASH: keys spread over endpoints; exclusion fails over deterministically', () => {
  const list = eps(4)
  const p = new ConsistentHashPolicy({ key: { type: 'header', name: 'k' } })
  const counts = new Map<string, number>()
  for (let i = 0; i < 4000; i++) {
    const ip = p.pick(list, { header: () => `key-${i}` })?.ip as string
    counts.set(ip, (counts.get(ip) ?? 0) + 1)
  }
  assert.equal(counts.size, 4)
  // each member owns at most ceil(25 × 1.25) = 32 of 100 partitions
  for (const c of counts.values()) assert.ok(c > 400 && c < 1500, `count ${c}`)

  const ctx = { header: () => 'alice' }
  const owner = p.pick(list, ctx) as (typeof list)[number]
  const exclude = new Set([`${owner.ip}:8080`])
  const second = p.pick(list, { ...ctx, exclude })
  assert.ok(second !== undefined && second.ip !== owner.ip)
  assert.equal(p.pick(list, { ...ctx, exclude })?.ip, second.ip)
  assert.equal(p.pick(list, { ...ctx, exclude: new Set(list.map(e => `${e.ip}:8080`)) }), undefined)
  assert.equal(p.pick([], ctx), undefined)
})

test('CONSISTENT_HASH: the ring is rebuilt only when the endpoint set changes', () => {
  const list = eps(3)
  const p = new ConsistentHashPolicy({ key: { type: 'header', name: 'k' } })
  p.pick(list, { header: () => 'a' })
  const ring = p.ring
  p.pick([...list], { header: () => 'a' })
  assert.equal(p.ring, ring)
  p.pick(eps(4), { header: () => 'a' })
  assert.notEqual(p.ring, ring)
  assert.equal(p.ring?.members.length, 4)
})
