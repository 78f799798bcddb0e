import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Backends } from '../../../src/gateway/backends.ts'
import { LoadBalancer } from '../../../src/loadbalancer/load-balancer.ts'
import type { EndpointDialer } from '../../../src/mesh/endpoint-dialer.ts'
import type { Endpoint, ServiceEntry, ServiceMapView } from '../../../src/servicemap/types.ts'
import { eps, serviceInfo } from '../loadbalancer/fixtures.ts'

function entry (endpoints: readonly Endpoint[]): ServiceEntry {
  return { service: serviceInfo(), endpoints }
}

function backends (current: () => ServiceEntry): Backends {
  const view = { get: () => current() } as unknown as ServiceMapView
  return new Backends({ serviceMap: view, loadBalancer: new LoadBalancer(), dialer: {} as unknown as EndpointDialer })
}

const dest = { service: 'default/web', port: 80, weight: 100 }

test('attempts: the first pick, then others only when asked, three at most and never one twice', (t) => {
  let e = entry(eps(5, { portName: 'http', port: 8080 }))
  const b = backends(() => e)
  t.after(() => { b.close() })
  const r = b.resolve(dest)
  assert.ok(r.ok)
  const all = [...b.attempts(r, {})].map(a => `${a.ep.ip}:${a.port}`)
  assert.equal(all.length, 3)
  assert.equal(new Set(all).size, 3, 'no endpoint tried twice')
  // Round robin: each request's first pick moves on.
  const firsts = Array.from({ length: 5 }, () => b.attempts(r, {}).next().value?.ep.ip)
  assert.equal(new Set(firsts).size, 5)

  e = entry(eps(2, { portName: 'http', port: 8080 }))
  const two = b.resolve(dest)
  assert.ok(two.ok)
  assert.notEqual(two, r, 'a new service map entry is resolved again')
  assert.equal(two.endpoints.length, 2)
  assert.equal([...b.attempts(two, {})].length, 2, 'fewer endpoints than attempts')
  assert.equal(b.resolve(dest), two, 'the same entry resolves to the same result')

  e = entry([])
  const none = b.resolve(dest)
  assert.ok(none.ok)
  const it = b.attempts(none, {})
  assert.equal(it.next().done, true)
  assert.equal(it.next().done, true, 'no endpoint: done, and done again')
})
