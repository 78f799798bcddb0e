import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseDestinationRule } from '../../../src/loadbalancer/destination-rule.ts'
import { LoadBalancer } from '../../../src/loadbalancer/load-balancer.ts'
import type { ServicePortKey } from '../../../src/loadbalancer/load-balancer.ts'
import type { Endpoint, ServiceChange, ServiceInfo } from '../../../src/servicemap/types.ts'
import { ep, eps, fakeClock, serviceInfo as info, seeded, tally } from './fixtures.ts'

const WEB: ServicePortKey = { service: 'default/web', port: 80, portName: 'http' }
const WEB_GRPC: ServicePortKey = { service: 'default/web', port: 9000, portName: 'grpc' }

function upsert (endpoints: readonly Endpoint[], over: Partial<ServiceInfo> = {}): ServiceChange[] {
  return [{ type: 'upsert', key: 'default/web', entry: { service: info(over), endpoints } }]
}

function rule (spec: unknown, name = 'web', namespace = 'default'): ReturnType<typeof parseDestinationRule> {
  return parseDestinationRule({ metadata: { namespace, name }, spec })
}

const httpEps = (n: number): Endpoint[] => eps(n, { portName: 'http', port: 8080 })

test('default policy is round robin over ready endpoints that serve the port', () => {
  const lb = new LoadBalancer({ random: () => 0 })
  const list = [...httpEps(3), ep('10.0.0.9', { portName: 'http', ready: false }), ep('10.0.0.8', { portName: 'other' })]
  assert.deepEqual(Array.from({ length: 4 }, () => lb.pick(WEB, list)?.ip), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1'])
  assert.deepEqual(lb.policyFor('default/web', 80), { spec: { type: 'ROUND_ROBIN' }, source: 'default', conflict: false })
  assert.equal(lb.pick(WEB, []), undefined)
  assert.equal(lb.needsHttp('default/web', 80), false)
})

test('DestinationRule by host and by name; port-level settings; needsHttp', () => {
  const cases: Array<{ name: string, rule: ReturnType<typeof rule>, port80: string, port9000: string, http80: boolean }> = [
    { name: 'FQDN host', rule: rule({ host: 'web.default.svc.cluster.local', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, 'dr-1'), port80: 'RANDOM', port9000: 'RANDOM', http80: false },
    { name: 'short host in the rule namespace', rule: rule({ host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } }, 'dr-2'), port80: 'CONSISTENT_HASH', port9000: 'CONSISTENT_HASH', http80: true },
    { name: 'by name (upstream), host elsewhere', rule: rule({ host: 'something-else', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }), port80: 'RANDOM', port9000: 'RANDOM', http80: false },
    {
      name: 'portLevelSettings',
      rule: rule({ host: 'web.default', trafficPolicy: { loadBalancer: { simple: 'RANDOM' }, portLevelSettings: [{ port: { number: 80 }, loadBalancer: { consistentHash: { httpCookie: { name: 'sid' } } } }] } }, 'dr-3'),
      port80: 'CONSISTENT_HASH',
      port9000: 'RANDOM',
      http80: true
    },
    { name: 'other namespace', rule: rule({ host: 'web', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, 'dr-4', 'prod'), port80: 'ROUND_ROBIN', port9000: 'ROUND_ROBIN', http80: false }
  ]
  for (const c of cases) {
    const lb = new LoadBalancer()
    lb.setRule(c.rule)
    assert.equal(lb.policyFor('default/web', 80).spec.type, c.port80, c.name)
    assert.equal(lb.policyFor('default/web', 9000).spec.type, c.port9000, c.name)
    assert.equal(lb.needsHttp('default/web', 80), c.http80, c.name)
    lb.deleteRule(c.rule.namespace, c.rule.name)
    assert.equal(lb.policyFor('default/web', 80).source, 'default', c.name)
  }
  const noName = new LoadBalancer({ matchByName: false })
  noName.setRule(rule({ host: 'elsewhere', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }))
  assert.equal(noName.policyFor('default/web', 80).source, 'default')
})

test('a host-bound rule wins over a name-bound one; the smallest name among host-bound rules wins', () => {
  const lb = new LoadBalancer()
  lb.setRule(rule({ host: 'other', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, 'web'))
  lb.setRule(rule({ host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true } } } }, 'zz'))
  assert.deepEqual(lb.policyFor('default/web', 80), { spec: { type: 'CONSISTENT_HASH', key: { type: 'sourceIp' } }, source: 'destinationRule', rule: 'default/zz', conflict: false })
  lb.setRule(rule({ host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'h' } } } }, 'aa'))
  assert.equal(lb.policyFor('default/web', 80).rule, 'default/aa')
  lb.deleteRule('default', 'aa')
  lb.deleteRule('default', 'zz')
  assert.equal(lb.policyFor('default/web', 80).rule, 'default/web')
  assert.equal(lb.policyFor('default/other', 80).rule, 'default/web')
  // updating a rule's host unbinds the old host
  lb.setRule(rule({ host: 'third', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, 'web'))
  assert.equal(lb.policyFor('default/other', 80).source, 'default')
  lb.deleteRule('default', 'missing')
})

test('switching ROUND_ROBIN → consistentHash by header changes the distribution for new picks', () => {
  const lb = new LoadBalancer({ random: seeded(1) })
  const list = httpEps(4)
  const header = (name: string): string | undefined => name === 'x-user' ? 'alice' : undefined
  const before = tally(Array.from({ length: 400 }, () => lb.pick(WEB, list, { header })))
  assert.deepEqual([...before.values()], [100, 100, 100, 100])
  lb.setRule(rule({ host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'X-User' } } } }))
  const after = tally(Array.from({ length: 400 }, () => lb.pick(WEB, list, { header })))
  assert.equal(after.size, 1)
  // unchanged policy on re-apply keeps the state (round-robin cursor, ring)
  lb.setRule(rule({ host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'X-User' } } } }))
  assert.deepEqual(tally(Array.from({ length: 10 }, () => lb.pick(WEB, list, { header }))), new Map([[[...after.keys()][0] as string, 10]]))
})

test('RANDOM via DestinationRule: distribution within bounds (seeded)', () => {
  const lb = new LoadBalancer({ random: seeded(9) })
  lb.setRule(rule({ host: 'web', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }))
  const list = httpEps(5)
  const counts = tally(Array.from({ length: 50_000 }, () => lb.pick(WEB, list)))
  // 10_000 expected each, sd ≈ 89: ±5 sd
  for (const c of counts.values()) assert.ok(Math.abs(c - 10_000) < 450, `count ${c}`)
})

test('sessionAffinity ClientIP: sticky with the Service timeout, overrides a rule (conflict), dropped with its endpoint', () => {
  const clock = fakeClock()
  const lb = new LoadBalancer({ random: () => 0, now: clock.now })
  const list = httpEps(3)
  lb.onServicesChanged(upsert(list, { sessionAffinity: 'ClientIP', affinityTimeoutSeconds: 60 }))
  lb.setRule(rule({ host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x' } } } }))
  assert.deepEqual(lb.policyFor('default/web', 80), { spec: { type: 'CLIENT_IP', timeoutSeconds: 60 }, source: 'sessionAffinity', rule: 'default/web', conflict: true })
  assert.equal(lb.needsHttp('default/web', 80), false)
  const first = lb.pick(WEB, list, { clientIP: '192.168.0.7' })?.ip
  assert.equal(first, '10.0.0.1')
  clock.advance(59_000)
  assert.equal(lb.pick(WEB, list, { clientIP: '192.168.0.7' })?.ip, first)
  // the endpoint goes away: the entry is dropped, the client moves on
  const rest = list.slice(1)
  lb.onServicesChanged(upsert(rest, { sessionAffinity: 'ClientIP', affinityTimeoutSeconds: 60 }))
  const moved = lb.pick(WEB, rest, { clientIP: '192.168.0.7' })?.ip
  assert.notEqual(moved, first)
  clock.advance(60_000)
  // expired: a fresh round-robin pick
  assert.notEqual(lb.pick(WEB, rest, { clientIP: '192.168.0.7' })?.ip, undefined)
  // affinity turned off: the rule applies again
  lb.onServicesChanged(upsert(rest))
  assert.equal(lb.policyFor('default/web', 80).spec.type, 'CONSISTENT_HASH')
  // service deleted: its state and settings go
  lb.onServicesChanged([{ type: 'delete', key: 'default/web', previous: { service: info(), endpoints: rest } }])
  assert.equal(lb.policyFor('default/web', 80).spec.type, 'CONSISTENT_HASH')
})

test('attempts: each retry excludes endpoints already tried, bounded', () => {
  const cases: Array<{ name: string, n: number, max?: number, preExcluded?: string[], want: number }> = [
    { name: 'default bound', n: 5, want: 3 },
    { name: 'fewer endpoints than attempts', n: 2, want: 2 },
    { name: 'custom bound', n: 5, max: 5, want: 5 },
    { name: 'caller-excluded endpoints are skipped', n: 3, max: 5, preExcluded: ['10.0.0.1:8080'], want: 2 },
    { name: 'no endpoints', n: 0, want: 0 }
  ]
  for (const c of cases) {
    const lb = new LoadBalancer({ random: seeded(2) })
    const ctx = c.preExcluded === undefined ? {} : { exclude: new Set(c.preExcluded) }
    const tried = [...lb.attempts(WEB, httpEps(c.n), ctx, c.max)].map(e => e.ip)
    assert.equal(tried.length, c.want, c.name)
    assert.equal(new Set(tried).size, tried.length, `${c.name}: no repeats`)
    for (const x of c.preExcluded ?? []) assert.ok(!tried.includes(x.split(':')[0] as string), c.name)
  }
})

test('attempts under consistent hash fail over along the ring, deterministically', () => {
  const lb = new LoadBalancer()
  lb.setRule(rule({ host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } }))
  const list = httpEps(4)
  const ctx = { header: () => 'bob' }
  const a = [...lb.attempts(WEB, list, ctx, 4)].map(e => e.ip)
  const b = [...lb.attempts(WEB, [...list].reverse(), ctx, 4)].map(e => e.ip)
  assert.deepEqual(a, b)
  assert.equal(new Set(a).size, 4)
  assert.equal(a[0], lb.pick(WEB, list, ctx)?.ip)
})

test('ports of one service keep separate state; endpoints are keyed by their target port', () => {
  const lb = new LoadBalancer({ random: () => 0 })
  const list = [1, 2].map(i => ({ ...ep(`10.0.0.${i}`), ports: [{ name: 'http', port: 8080, protocol: 'TCP' as const }, { name: 'grpc', port: 9090, protocol: 'TCP' as const }] }))
  assert.equal(lb.pick(WEB, list)?.ip, '10.0.0.1')
  assert.equal(lb.pick(WEB_GRPC, list)?.ip, '10.0.0.1')
  assert.equal(lb.pick(WEB, list, { exclude: new Set(['10.0.0.2:8080']) })?.ip, '10.0.0.1')
  assert.equal(lb.pick(WEB_GRPC, list, { exclude: new Set(['10.0.0.2:9090']) })?.ip, '10.0.0.1')
  assert.equal(lb.pick(WEB_GRPC, list, { exclude: new Set(['10.0.0.1:9090', '10.0.0.2:9090']) }), undefined)
})
