// Istio's delegate VirtualServices: the delegate's routes take the root
// route's place, narrowed by its matches, filling in what they leave unset;
// a delegate match outside the root's, a missing delegate or a second level
// is not served and is named in the table's problems.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseGateway, parseVirtualService, buildRouteTable, GatewayResourceError } from '../../../src/gateway/index.ts'
import type { HttpRequestFacts } from '../../../src/gateway/index.ts'

const gw = parseGateway({ kind: 'Gateway', metadata: { name: 'gw', namespace: 'default' }, spec: { servers: [{ port: { number: 80, protocol: 'HTTP' }, hosts: ['*'] }] } } as never)
function vs (name: string, spec: Record<string, unknown>, namespace = 'default'): ReturnType<typeof parseVirtualService> {
  return parseVirtualService({ kind: 'VirtualService', metadata: { name, namespace, creationTimestamp: '2026-01-01T00:00:00Z' }, spec } as never)
}
function req (path: string, headers: Record<string, string> = {}): HttpRequestFacts {
  return { authority: 'shop.example.com', method: 'GET', scheme: 'http', path, header: n => headers[n] }
}
const to = (host: string): unknown => ({ destination: { host, port: { number: 80 } } })

const root = vs('root', {
  gateways: ['gw'],
  hosts: ['shop.example.com'],
  http: [
    { match: [{ uri: { prefix: '/cart' } }], delegate: { name: 'cart', namespace: 'team-cart' }, timeout: '3s', headers: { request: { set: { 'x-root': '1' } } } },
    { match: [{ uri: { prefix: '/' } }], route: [to('web')] }
  ]
})

test('the delegate\'s routes serve in the root route\'s place, in the delegate\'s namespace, within the root\'s match', () => {
  const cart = vs('cart', {
    http: [
      { match: [{ uri: { prefix: '/cart/v2' } }], route: [to('cart-v2')], timeout: '1s' },
      { match: [{ uri: { exact: '/cart/checkout' }, headers: { 'x-user': { exact: 'vip' } } }], route: [to('checkout')] },
      // Outside /cart: not served, and named.
      { match: [{ uri: { prefix: '/admin' } }], route: [to('admin')] },
      { route: [to('cart-v1')] }
    ]
  }, 'team-cart')
  const t = buildRouteTable([gw], [root, cart])
  const dest = (path: string, headers?: Record<string, string>): string | undefined => t.matchHttp(80, req(path, headers))?.route.route[0]?.service
  assert.equal(dest('/cart/v2/items'), 'team-cart/cart-v2')
  assert.equal(dest('/cart/checkout', { 'x-user': 'vip' }), 'team-cart/checkout')
  assert.equal(dest('/cart/checkout'), 'team-cart/cart-v1', 'header not given: the catch-all delegate route, narrowed to /cart')
  assert.equal(dest('/admin'), 'default/web', 'the delegate route outside /cart is not served')
  assert.equal(dest('/'), 'default/web')
  assert.ok(t.problems.some(p => p.includes('VirtualService team-cart/cart spec.http[2].match is not within')), t.problems.join('\n'))
  // What the delegate route sets wins; what it leaves unset comes from the root route.
  const v2 = t.matchHttp(80, req('/cart/v2'))?.route
  assert.equal(v2?.timeoutMs, 1000)
  assert.deepEqual(v2?.requestHeaders.set, [['x-root', '1']])
  assert.equal(t.matchHttp(80, req('/cart/x'))?.route.timeoutMs, 3000)
})

test('a missing delegate, one with hosts, a second level, and a delegate nothing points to are not served, and named', () => {
  const lone = buildRouteTable([gw], [root])
  assert.equal(lone.matchHttp(80, req('/cart/x'))?.route.route[0]?.service, 'default/web')
  assert.ok(lone.problems.some(p => p.includes('team-cart/cart does not exist')), lone.problems.join('\n'))

  const withHosts = buildRouteTable([gw], [root, vs('cart', { hosts: ['cart.example.com'], http: [{ route: [to('cart')] }] }, 'team-cart')])
  assert.equal(withHosts.matchHttp(80, req('/cart/x'))?.route.route[0]?.service, 'default/web')
  assert.ok(withHosts.problems.some(p => p.includes('sets hosts or gateways; a delegate sets neither')), withHosts.problems.join('\n'))

  const orphan = buildRouteTable([gw], [vs('orphan', { http: [{ route: [to('x')] }] })])
  assert.ok(orphan.problems.some(p => p.includes('VirtualService default/orphan: has no hosts, and no VirtualService delegates to it')), orphan.problems.join('\n'))

  const nested = buildRouteTable([gw], [root, vs('cart', { http: [{ match: [{ uri: { prefix: '/cart/a' } }], delegate: { name: 'deeper' } }, { route: [to('cart')] }] }, 'team-cart'), vs('deeper', { http: [{ route: [to('deep')] }] }, 'team-cart')])
  assert.equal(nested.matchHttp(80, req('/cart/a'))?.route.route[0]?.service, 'team-cart/cart')
  assert.ok(nested.problems.some(p => p.includes('delegates again; one level only')), nested.problems.join('\n'))
})

test('exact and regex roots admit only the same exact path; conflicting headers or ports are not served', () => {
  const r = vs('r', {
    gateways: ['gw'],
    hosts: ['*'],
    http: [
      { match: [{ uri: { exact: '/login' } }], delegate: { name: 'login' } },
      { match: [{ uri: { prefix: '/h' }, headers: { 'x-env': { exact: 'prod' } } }], delegate: { name: 'h' } }
    ]
  })
  const login = vs('login', { http: [{ match: [{ uri: { prefix: '/login' } }], route: [to('prefix')] }, { match: [{ uri: { exact: '/login' } }], route: [to('exact')] }] })
  const h = vs('h', { http: [{ match: [{ headers: { 'x-env': { exact: 'dev' } } }], route: [to('dev')] }, { match: [{ uri: { prefix: '/h/x' } }], route: [to('hx')] }] })
  const t = buildRouteTable([gw], [r, login, h])
  assert.equal(t.matchHttp(80, req('/login'))?.route.route[0]?.service, 'default/exact')
  assert.equal(t.matchHttp(80, req('/h/x', { 'x-env': 'dev' })), undefined, 'the root\'s header still applies')
  assert.equal(t.matchHttp(80, req('/h/x', { 'x-env': 'prod' }))?.route.route[0]?.service, 'default/hx')
  assert.equal(t.problems.filter(p => p.includes('is not within')).length, 2, t.problems.join('\n'))
})

test('a delegate route with a destination, and a VirtualService with gateways but no hosts, are rejected naming the field', () => {
  assert.throws(() => vs('x', { gateways: ['gw'], hosts: ['*'], http: [{ delegate: { name: 'd' }, route: [to('a')] }] }), (e: unknown) => e instanceof GatewayResourceError && e.message.includes('spec.http[0].delegate'))
  assert.throws(() => vs('x', { gateways: ['gw'], hosts: ['*'], http: [{ delegate: {} }] }), /spec\.http\[0\]\.delegate\.name/)
  assert.throws(() => vs('x', { gateways: ['gw'], http: [{ route: [to('a')] }] }), /spec\.hosts/)
})
