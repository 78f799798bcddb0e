import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LbInvalidRuleError, LbUnsupportedPolicyError } from '../../../src/loadbalancer/errors.ts'
import { hostToService, parseDestinationRule, policyForPort, specNeedsHttp } from '../../../src/loadbalancer/destination-rule.ts'

function dr (spec: unknown, meta: Record<string, unknown> = { namespace: 'default', name: 'web' }): unknown {
  return { apiVersion: 'networking.istio.io/v1alpha3', kind: 'DestinationRule', metadata: meta, spec }
}

test('hostToService: short name, svc.ns, FQDN, and non-service hosts', () => {
  const cases: Array<[string, string | undefined]> = [
    ['web', 'default/web'],
    ['web.prod', 'prod/web'],
    ['web.prod.svc', 'prod/web'],
    ['web.prod.svc.cluster.local', 'prod/web'],
    ['Web.Prod.svc.cluster.local.', 'prod/web'],
    ['*.prod.svc.cluster.local', undefined],
    ['*', undefined],
    ['api.example.com', undefined],
    ['web.prod.svc.other.domain', undefined]
  ]
  for (const [host, want] of cases) assert.equal(hostToService(host, 'default'), want, host)
  assert.equal(hostToService('web.prod.svc.edge.local', 'default', 'edge.local'), 'prod/web')
})

test('parseDestinationRule: policies, portLevelSettings, inheritance', () => {
  const rule = parseDestinationRule(dr({
    host: 'web.default.svc.cluster.local',
    trafficPolicy: {
      loadBalancer: { simple: 'RANDOM' },
      portLevelSettings: [
        { port: { number: 80 }, loadBalancer: { consistentHash: { httpHeaderName: 'X-User' } } },
        { port: { number: 8080 }, loadBalancer: { consistentHash: { httpCookie: { name: 'sid', ttl: '1h30m', path: '/' } } } },
        { port: { number: 9000 }, loadBalancer: { consistentHash: { useSourceIp: true, minimumRingSize: 1024 } } },
        { port: { number: 9443 }, connectionPool: {} }
      ]
    }
  }))
  assert.equal(rule.hostService, 'default/web')
  const cases: Array<[number, unknown, boolean]> = [
    [80, { type: 'CONSISTENT_HASH', key: { type: 'header', name: 'x-user' } }, true],
    [8080, { type: 'CONSISTENT_HASH', key: { type: 'cookie', name: 'sid', ttlSeconds: 5400, path: '/' } }, true],
    [9000, { type: 'CONSISTENT_HASH', key: { type: 'sourceIp' } }, false],
    [9443, { type: 'RANDOM' }, false], // entry without loadBalancer inherits
    [1234, { type: 'RANDOM' }, false]
  ]
  for (const [port, want, http] of cases) {
    assert.deepEqual(policyForPort(rule, port), want, `port ${port}`)
    assert.equal(specNeedsHttp(policyForPort(rule, port)), http, `port ${port}`)
  }
})

test('parseDestinationRule: upstream example shape (host not the service, name is)', () => {
  const rule = parseDestinationRule(dr({ host: 'hostname-lb-svc', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } }, { namespace: 'default', name: 'hostname-lb-svc' }))
  assert.deepEqual(rule.policy, { type: 'ROUND_ROBIN' })
  assert.equal(rule.portPolicies.size, 0)
  const none = parseDestinationRule(dr({ host: 'x', trafficPolicy: { loadBalancer: { simple: 'UNSPECIFIED' } } }))
  assert.equal(none.policy, undefined)
  assert.equal(parseDestinationRule(dr({ host: 'x' })).policy, undefined)
  assert.equal(parseDestinationRule({ metadata: { namespace: 'a', name: 'b' }, spec: { host: 'x', trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'c', ttl: '0s' } } } } } }).policy?.type, 'CONSISTENT_HASH')
})

test('parseDestinationRule: errors carry a code, the rule and the field', () => {
  const invalid = 'EM_ERR_LB_INVALID_RULE'
  const unsupported = 'EM_ERR_LB_UNSUPPORTED_POLICY'
  const cases: Array<{ name: string, obj: unknown, code: string, field?: string }> = [
    { name: 'not an object', obj: 'x', code: invalid, field: 'metadata' },
    { name: 'no name', obj: dr({ host: 'x' }, { namespace: 'a' }), code: invalid, field: 'metadata' },
    { name: 'wrong group', obj: { ...(dr({ host: 'x' }) as object), apiVersion: 'v1' }, code: invalid, field: 'apiVersion' },
    { name: 'wrong kind', obj: { ...(dr({ host: 'x' }) as object), kind: 'VirtualService' }, code: invalid, field: 'kind' },
    { name: 'no spec', obj: dr(undefined), code: invalid, field: 'spec' },
    { name: 'no host', obj: dr({ trafficPolicy: {} }), code: invalid, field: 'spec.host' },
    { name: 'trafficPolicy not object', obj: dr({ host: 'x', trafficPolicy: [] }), code: invalid, field: 'spec.trafficPolicy' },
    { name: 'unknown simple', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { simple: 'FASTEST' } } }), code: invalid, field: 'spec.trafficPolicy.loadBalancer.simple' },
    { name: 'LEAST_REQUEST', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } } }), code: unsupported },
    { name: 'LEAST_CONN', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { simple: 'LEAST_CONN' } } }), code: unsupported },
    { name: 'PASSTHROUGH', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { simple: 'PASSTHROUGH' } } }), code: unsupported },
    { name: 'query parameter', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { consistentHash: { httpQueryParameterName: 'u' } } } }), code: unsupported },
    { name: 'simple and hash', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { simple: 'RANDOM', consistentHash: { useSourceIp: true } } } }), code: invalid, field: 'spec.trafficPolicy.loadBalancer' },
    { name: 'no hash key', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { consistentHash: {} } } }), code: invalid, field: 'spec.trafficPolicy.loadBalancer.consistentHash' },
    { name: 'useSourceIp false only', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: false } } } }), code: invalid },
    { name: 'two hash keys', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true, httpHeaderName: 'h' } } } }), code: invalid },
    { name: 'empty header', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: '' } } } }), code: invalid, field: 'spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName' },
    { name: 'cookie without name', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { ttl: '1s' } } } } }), code: invalid, field: 'spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name' },
    { name: 'bad ttl', obj: dr({ host: 'x', trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'c', ttl: '10 minutes' } } } } }), code: invalid, field: 'spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl' },
    { name: 'portLevelSettings not a list', obj: dr({ host: 'x', trafficPolicy: { portLevelSettings: {} } }), code: invalid, field: 'spec.trafficPolicy.portLevelSettings' },
    { name: 'port missing', obj: dr({ host: 'x', trafficPolicy: { portLevelSettings: [{ loadBalancer: { simple: 'RANDOM' } }] } }), code: invalid, field: 'spec.trafficPolicy.portLevelSettings[0].port.number' },
    { name: 'port out of range', obj: dr({ host: 'x', trafficPolicy: { portLevelSettings: [{ port: { number: 70000 } }] } }), code: invalid, field: 'spec.trafficPolicy.portLevelSettings[0].port.number' },
    { name: 'port twice', obj: dr({ host: 'x', trafficPolicy: { portLevelSettings: [{ port: { number: 80 } }, { port: { number: 80 } }] } }), code: invalid, field: 'spec.trafficPolicy.portLevelSettings[1].port.number' },
    { name: 'port-level unsupported', obj: dr({ host: 'x', trafficPolicy: { portLevelSettings: [{ port: { number: 80 }, loadBalancer: { simple: 'LEAST_REQUEST' } }] } }), code: unsupported }
  ]
  for (const c of cases) {
    assert.throws(() => parseDestinationRule(c.obj), (err: unknown) => {
      assert.ok(err instanceof LbInvalidRuleError || err instanceof LbUnsupportedPolicyError, c.name)
      assert.equal(err.code, c.code, c.name)
      if (c.field !== undefined) assert.equal((err as LbInvalidRuleError).field, c.field, c.name)
      return true
    }, c.name)
  }
  try {
    parseDestinationRule(dr({ host: 'x', trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } } }))
  } catch (err) {
    assert.ok(err instanceof LbUnsupportedPolicyError)
    assert.equal(err.rule, 'default/web')
    assert.match(err.message, /DestinationRule default\/web: unsupported load-balancer policy simple: LEAST_REQUEST/)
  }
})
