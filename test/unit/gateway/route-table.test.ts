import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseGateway, parseVirtualService, buildRouteTable, GatewayResourceError } from '../../../src/gateway/index.ts'
import type { HttpRequestFacts } from '../../../src/gateway/index.ts'

function gateway (name: string, servers: unknown[], namespace = 'default'): ReturnType<typeof parseGateway> {
  return parseGateway({ kind: 'Gateway', metadata: { name, namespace }, spec: { servers } } as never)
}

function vs (name: string, spec: Record<string, unknown>, namespace = 'default', created = '2026-01-01T00:00:00Z'): ReturnType<typeof parseVirtualService> {
  return parseVirtualService({ kind: 'VirtualService', metadata: { name, namespace, creationTimestamp: created }, spec } as never)
}

function req (path: string, extra: Partial<HttpRequestFacts> & { headers?: Record<string, string> } = {}): HttpRequestFacts {
  const headers = extra.headers ?? {}
  return { authority: 'example.com', method: 'GET', scheme: 'http', ...extra, path, header: n => headers[n] }
}

const http80 = (hosts: string[] = ['*']): unknown => ({ port: { number: 80, protocol: 'HTTP', name: 'http' }, hosts })
const to = (host: string, extra: Record<string, unknown> = {}): unknown => ({ destination: { host, port: { number: 80 } }, ...extra })

test('upstream\'s example binds: every path under prefix / goes to hostname-lb-svc in the VirtualService\'s namespace', () => {
  const t = buildRouteTable([gateway('edgemesh-gateway', [{ hosts: ['*'], port: { name: 'http-0', number: 23333, protocol: 'HTTP' } }])],
    [vs('edgemesh-gateway-svc', { gateways: ['edgemesh-gateway'], hosts: ['*'], http: [{ match: [{ uri: { prefix: '/' } }], route: [{ destination: { host: 'hostname-lb-svc', port: { number: 12345 } } }] }] })])
  assert.deepEqual(t.listeners().map(l => [l.port, l.kind, l.tls]), [[23333, 'http', undefined]])
  for (const path of ['/', '/who', '/a/b?c=d']) {
    const m = t.matchHttp(23333, req(path))
    assert.equal(m?.route.route[0]?.service, 'default/hostname-lb-svc', path)
    assert.equal(m?.route.route[0]?.port, 12345)
  }
  assert.equal(t.matchHttp(80, req('/')), undefined, 'no listener on another port')
})

test('routes are tried in order, and a longer prefix listed later does not win (Istio order, not longest match)', () => {
  const t = buildRouteTable([gateway('gw', [http80()])], [vs('v', {
    gateways: ['gw'],
    hosts: ['*'],
    http: [
      { match: [{ uri: { prefix: '/api/welcome' } }], route: [to('api')] },
      { match: [{ uri: { prefix: '/welcome' } }], route: [to('welcome')] },
      { match: [{ uri: { exact: '/exact' } }], route: [to('exact')] },
      { match: [{ uri: { regex: '/items/[0-9]+' } }], route: [to('items')] },
      { route: [to('default')] }
    ]
  })])
  const dest = (path: string, extra?: Parameters<typeof req>[1]): string | undefined => t.matchHttp(80, req(path, extra))?.route.route[0]?.service
  assert.equal(dest('/welcome'), 'default/welcome')
  assert.equal(dest('/api/welcome'), 'default/api', 'upstream #396 misrouted this')
  assert.equal(dest('/exact'), 'default/exact')
  assert.equal(dest('/exact?x=1'), 'default/exact', 'exact ignores the query string')
  assert.equal(dest('/exact/more'), 'default/default')
  assert.equal(dest('/items/42'), 'default/items')
  assert.equal(dest('/items/42/x'), 'default/default', 'a regex matches the whole path')
})

test('matches on headers, method, authority, query parameters, case-insensitive uri and absent headers', () => {
  const t = buildRouteTable([gateway('gw', [http80()])], [vs('v', {
    gateways: ['gw'],
    hosts: ['*'],
    http: [
      { match: [{ headers: { 'X-Canary': { exact: 'yes' } } }], route: [to('canary')] },
      { match: [{ method: { exact: 'POST' }, uri: { prefix: '/form' } }], route: [to('post')] },
      { match: [{ authority: { prefix: 'admin.' } }], route: [to('admin')] },
      { match: [{ queryParams: { v: { exact: '2' } } }], route: [to('v2')] },
      { match: [{ uri: { exact: '/CaSe' }, ignoreUriCase: true }], route: [to('case')] },
      { match: [{ withoutHeaders: { authorization: {} }, uri: { prefix: '/private' } }], route: [to('login')] },
      { route: [to('default')] }
    ]
  })])
  const dest = (path: string, extra?: Parameters<typeof req>[1]): string | undefined => t.matchHttp(80, req(path, extra))?.route.route[0]?.service
  assert.equal(dest('/', { headers: { 'x-canary': 'yes' } }), 'default/canary')
  assert.equal(dest('/', { headers: { 'x-canary': 'no' } }), 'default/default')
  assert.equal(dest('/form', { method: 'POST' }), 'default/post')
  assert.equal(dest('/form', { method: 'GET' }), 'default/default')
  assert.equal(dest('/', { authority: 'admin.example.com:8080' }), 'default/admin')
  assert.equal(dest('/x?v=2&w=1'), 'default/v2')
  assert.equal(dest('/x?v=3'), 'default/default')
  assert.equal(dest('/case'), 'default/case')
  assert.equal(dest('/private/x'), 'default/login')
  assert.equal(dest('/private/x', { headers: { authorization: 'Bearer t' } }), 'default/default')
})

test('hosts: exact beats wildcard, the longer wildcard beats the shorter, and an unknown host has no route', () => {
  const t = buildRouteTable([gateway('gw', [http80(['*.example.com', 'example.org'])])], [
    vs('wild', { gateways: ['gw'], hosts: ['*.example.com'], http: [{ route: [to('wild')] }] }),
    vs('deep', { gateways: ['gw'], hosts: ['*.api.example.com'], http: [{ route: [to('deep')] }] }),
    vs('exact', { gateways: ['gw'], hosts: ['www.example.com'], http: [{ route: [to('exact')] }] }),
    // Newer: for *.example.com its routes come after wild's.
    vs('org', { gateways: ['gw'], hosts: ['*'], http: [{ route: [to('org')] }] }, 'default', '2026-03-01T00:00:00Z')
  ])
  const dest = (authority: string): string | undefined => t.matchHttp(80, req('/', { authority }))?.route.route[0]?.service
  assert.equal(dest('www.example.com'), 'default/exact')
  assert.equal(dest('WWW.Example.com:80'), 'default/exact', 'case and port do not matter')
  assert.equal(dest('v1.api.example.com'), 'default/deep')
  assert.equal(dest('shop.example.com'), 'default/wild')
  assert.equal(dest('example.org'), 'default/org', 'a `*` VirtualService takes the server\'s other hosts')
  assert.equal(dest('example.net'), undefined)
  assert.equal(dest('example.com'), undefined, '*.example.com does not admit example.com itself')
  // Authorities are remembered per table, at most 4,096 per port: asked again, and past that many, the answers stay the same.
  for (let i = 0; i < 5000; i++) assert.equal(dest(`n${i}.example.com`), 'default/wild')
  assert.equal(dest('www.example.com'), 'default/exact')
  assert.equal(dest('example.net'), undefined)
  assert.equal(dest('example.org'), 'default/org')
})

test('binding: gateways by name or namespace/name, server host namespaces, destinations in other namespaces', () => {
  const gw = gateway('public', [{ port: { number: 80, protocol: 'HTTP' }, hosts: ['team-a/*', './own.example.com'] }], 'infra')
  const t = buildRouteTable([gw], [
    vs('a', { gateways: ['infra/public'], hosts: ['a.example.com'], http: [{ route: [{ destination: { host: 'web.shop.svc.cluster.local' } }] }] }, 'team-a'),
    vs('b', { gateways: ['infra/public'], hosts: ['b.example.com'], http: [{ route: [to('web')] }] }, 'team-b'),
    vs('own', { gateways: ['public'], hosts: ['own.example.com'], http: [{ route: [to('own')] }] }, 'infra'),
    vs('wrong-ns', { gateways: ['public'], hosts: ['x.example.com'], http: [{ route: [to('x')] }] }, 'team-a')
  ])
  assert.equal(t.matchHttp(80, req('/', { authority: 'a.example.com' }))?.route.route[0]?.service, 'shop/web')
  assert.equal(t.matchHttp(80, req('/', { authority: 'b.example.com' })), undefined, 'team-b is not admitted by the server hosts')
  assert.equal(t.matchHttp(80, req('/', { authority: 'own.example.com' }))?.route.route[0]?.service, 'infra/own')
  assert.ok(t.problems.some(p => p.includes('team-b/b')), 'an unbound VirtualService is reported')
  assert.ok(t.problems.some(p => p.includes('team-a/wrong-ns')), '`public` in team-a means team-a/public')
})

test('VirtualServices for one host merge oldest first', () => {
  const t = buildRouteTable([gateway('gw', [http80()])], [
    vs('new', { gateways: ['gw'], hosts: ['*'], http: [{ match: [{ uri: { prefix: '/' } }], route: [to('new')] }] }, 'default', '2026-02-01T00:00:00Z'),
    vs('old', { gateways: ['gw'], hosts: ['*'], http: [{ match: [{ uri: { prefix: '/old' } }], route: [to('old')] }] }, 'default', '2026-01-01T00:00:00Z')
  ])
  assert.equal(t.matchHttp(80, req('/old/x'))?.route.route[0]?.service, 'default/old')
  assert.equal(t.matchHttp(80, req('/x'))?.route.route[0]?.service, 'default/new')
})

test('TCP, TLS passthrough by SNI, TLS termination and port conflicts', () => {
  const gw = gateway('gw', [
    { port: { number: 9000, protocol: 'TCP' }, hosts: ['*'] },
    { port: { number: 443, protocol: 'TLS' }, hosts: ['*'], tls: { mode: 'PASSTHROUGH' } },
    { port: { number: 8443, protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'MUTUAL', credentialName: 'cert', minProtocolVersion: 'TLSV1_2', cipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'NOT_A_SUITE'] } }
  ])
  const clash = gateway('later', [{ port: { number: 9000, protocol: 'HTTP' }, hosts: ['*'] }])
  const t = buildRouteTable([gw, clash], [vs('v', {
    gateways: ['gw'],
    hosts: ['*'],
    tcp: [{ match: [{ port: 9000 }], route: [to('db')] }],
    tls: [
      { match: [{ sniHosts: ['a.example.com'] }], route: [to('a')] },
      { match: [{ sniHosts: ['*.example.com'] }], route: [to('any')] }
    ]
  })])
  assert.equal(t.tcpRoute(9000)?.route[0]?.service, 'default/db')
  assert.equal(t.tlsRoute(443, 'a.example.com')?.route[0]?.service, 'default/a')
  assert.equal(t.tlsRoute(443, 'b.example.com')?.route[0]?.service, 'default/any')
  assert.equal(t.tlsRoute(443, 'other.org'), undefined)
  const mtls = t.listener(8443)
  assert.equal(mtls?.tls?.mode, 'MUTUAL')
  assert.deepEqual(mtls?.tls?.credentials, [{ hosts: ['*'], secret: 'default/cert' }])
  assert.equal(mtls?.tls?.minVersion, 'TLSv1.2')
  assert.deepEqual(mtls?.tls?.ciphers, ['ECDHE-RSA-AES128-GCM-SHA256'], 'Go names become OpenSSL names; unknown ones are dropped')
  assert.equal(t.listener(9000)?.kind, 'tcp', 'the older (first by name) Gateway keeps the port')
  assert.ok(t.problems.some(p => p.includes('port 9000') && p.includes('default/later')))
})

test('upstream\'s TLS example (protocol HTTP with a credential) terminates TLS; TLS_AUTO is not TLS 1.0 only', () => {
  const gw = gateway('edgemesh-gateway', [{ hosts: ['*'], port: { name: 'http-0', number: 23333, protocol: 'HTTP' }, tls: { credentialName: 'gw-secret', mode: 'MUTUAL', minProtocolVersion: 'TLSV1_2', maxProtocolVersion: 'TLSV1_2' } }])
  const t = buildRouteTable([gw], [])
  assert.equal(t.listener(23333)?.tls?.mode, 'MUTUAL')
  assert.equal(t.listener(23333)?.tls?.maxVersion, 'TLSv1.2')
  const auto = gateway('g', [{ hosts: ['*'], port: { number: 443, protocol: 'HTTPS' }, tls: { mode: 'SIMPLE', credentialName: 'c', minProtocolVersion: 'TLS_AUTO' } }])
  assert.equal(buildRouteTable([auto], []).listener(443)?.tls?.minVersion, undefined)
})

test('invalid resources are rejected with the field that is wrong', () => {
  const cases: Array<[() => unknown, string]> = [
    [() => gateway('g', [{ port: { number: 70000, protocol: 'HTTP' }, hosts: ['*'] }]), 'spec.servers[0].port.number'],
    [() => gateway('g', [{ port: { number: 80, protocol: 'SMTP' }, hosts: ['*'] }]), 'spec.servers[0].port.protocol'],
    [() => gateway('g', [{ port: { number: 80 }, hosts: [] }]), 'spec.servers[0].hosts'],
    [() => gateway('g', [{ port: { number: 443, protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'SIMPLE' } }]), 'spec.servers[0].tls.credentialName'],
    [() => vs('v', { hosts: ['*'], http: [{ match: [{ uri: { regex: '(' } }], route: [to('x')] }] }), 'spec.http[0].match[0].uri.regex'],
    [() => vs('v', { hosts: ['*'], http: [{ match: [{ uri: { exact: '/', prefix: '/' } }], route: [to('x')] }] }), 'spec.http[0].match[0].uri'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [{ destination: {} }] }] }), 'spec.http[0].route[0].destination.host'],
    [() => vs('v', { hosts: ['*'], http: [{ timeout: 'soon', route: [to('x')] }] }), 'spec.http[0].timeout'],
    [() => vs('v', { hosts: ['*'], http: [{}] }), 'spec.http[0].route'],
    [() => vs('v', { hosts: [], gateways: ['gw'] }), 'spec.hosts'],
    [() => vs('v', { hosts: ['*'], http: 'nope' }), 'spec.http'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], headers: { request: { set: { 'x-a': 'v\r\nx-evil: 1' } } } }] }), 'spec.http[0].headers.request.set.x-a'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], headers: { response: { add: { 'bad name': 'v' } } } }] }), 'spec.http[0].headers.response.add'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], mirror: { host: 'm' }, mirrorPercentage: { value: 150 } }] }), 'spec.http[0].mirrorPercentage.value'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], mirror: { host: 'm' }, mirrors: [{ destination: { host: 'n' } }] }] }), 'spec.http[0].mirrors'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], mirrors: [{ destination: {} }] }] }), 'spec.http[0].mirrors[0].destination.host'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], fault: { delay: { percentage: { value: 10 } } } }] }), 'spec.http[0].fault.delay.fixedDelay'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], fault: { abort: { httpStatus: 700 } } }] }), 'spec.http[0].fault.abort.httpStatus'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], fault: { abort: { grpcStatus: 'NOPE' } } }] }), 'spec.http[0].fault.abort.grpcStatus'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], fault: { abort: { httpStatus: 503, percent: 150 } } }] }), 'spec.http[0].fault.abort.percent'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], fault: { abort: { http2Error: 'REFUSED_STREAM', percentage: { value: 10 } } } }] }), 'spec.http[0].fault.abort.http2Error'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], fault: { delay: { exponentialDelay: '1s', percentage: { value: 10 } } } }] }), 'spec.http[0].fault.delay.fixedDelay'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], corsPolicy: { allowOrigins: [{ regex: '(' }] } }] }), 'spec.http[0].corsPolicy.allowOrigins[0].regex'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], corsPolicy: { allowHeaders: ['x-a\r\nset-cookie: 1'] } }] }), 'spec.http[0].corsPolicy.allowHeaders[0]'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], corsPolicy: { maxAge: 'long' } }] }), 'spec.http[0].corsPolicy.maxAge'],
    [() => vs('v', { hosts: ['*'], http: [{ route: [to('x')], directResponse: { status: 200 } }] }), 'spec.http[0].directResponse'],
    [() => vs('v', { hosts: ['*'], http: [{ directResponse: { status: 99 } }] }), 'spec.http[0].directResponse.status'],
    [() => vs('v', { hosts: ['*'], http: [{ directResponse: { status: 200, body: { string: 'a', bytes: 'Yg==' } } }] }), 'spec.http[0].directResponse.body'],
    [() => vs('v', { hosts: ['*'], http: [{ directResponse: { status: 200, body: { string: 'x'.repeat(5000) } } }] }), 'spec.http[0].directResponse.body']
  ]
  for (const [make, field] of cases) {
    assert.throws(make, (err: unknown) => err instanceof GatewayResourceError && err.field === field && err.code === 'EM_ERR_GATEWAY_RESOURCE' && err.message.includes(field), field)
  }
})

test('weights, rewrite, redirect, headers, timeout and retries are read', () => {
  const v = vs('v', {
    hosts: ['*'],
    http: [{
      name: 'split',
      route: [{ destination: { host: 'a' }, weight: 80 }, { destination: { host: 'b', subset: 'v2' }, weight: 20 }],
      rewrite: { uri: '/new', authority: 'internal' },
      headers: { request: { set: { 'X-A': '1' }, add: { 'X-B': '2' }, remove: ['X-C'] }, response: { set: { 'X-D': '3' } } },
      timeout: '1.5s',
      retries: { attempts: 3, perTryTimeout: '500ms', retryOn: '5xx,reset' }
    }, { redirect: { uri: '/moved', redirectCode: 302 } }]
  })
  const [split, moved] = v.http
  assert.deepEqual(split?.route.map(d => [d.service, d.weight, d.subset]), [['default/a', 80, undefined], ['default/b', 20, 'v2']])
  assert.equal(split?.id, 'default/v#split')
  assert.deepEqual(split?.rewrite, { uri: '/new', authority: 'internal' })
  assert.deepEqual(split?.requestHeaders, { set: [['x-a', '1']], add: [['x-b', '2']], remove: ['x-c'] })
  assert.equal(split?.timeoutMs, 1500)
  assert.deepEqual(split?.retries, { attempts: 3, retryOn: ['5xx', 'reset'], perTryTimeoutMs: 500 })
  assert.deepEqual(moved?.redirect, { code: 302, uri: '/moved' })
})

test('mirrors: `mirror` with mirrorPercentage or the older mirrorPercent, or the list `mirrors`', () => {
  const v = vs('v', {
    hosts: ['*'],
    http: [
      { route: [to('a')], mirror: { host: 'shadow.team', port: { number: 8080 }, subset: 'v2' } },
      { route: [to('a')], mirror: { host: 'shadow' }, mirrorPercentage: { value: 12.5 } },
      { route: [to('a')], mirror: { host: 'shadow' }, mirrorPercent: 30 },
      { route: [to('a')], mirrors: [{ destination: { host: 'one' } }, { destination: { host: 'two' }, percentage: { value: 0.5 } }] },
      { route: [to('a')] }
    ]
  })
  const read = v.http.map(r => r.mirrors?.map(m => [m.dest.service, m.dest.port, m.dest.subset, m.percent]))
  assert.deepEqual(read, [
    [['team/shadow', 8080, 'v2', 100]],
    [['default/shadow', undefined, undefined, 12.5]],
    [['default/shadow', undefined, undefined, 30]],
    [['default/one', undefined, undefined, 100], ['default/two', undefined, undefined, 0.5]],
    undefined
  ])
})

test('fault: a fixed delay and an abort, each on `percentage`, the older `percent`, or none when neither is set; an abort with no error type aborts nothing', () => {
  const v = vs('v', {
    hosts: ['*'],
    http: [
      { route: [to('a')], fault: { delay: { fixedDelay: '2s', percentage: { value: 12.5 } }, abort: { httpStatus: 503, percent: 10 } } },
      { route: [to('a')], fault: { abort: { grpcStatus: 'unavailable', percentage: { value: 100 } } } },
      { route: [to('a')], fault: { delay: { fixedDelay: '5ms' } } },
      { route: [to('a')], fault: { abort: { percentage: { value: 10 } } } },
      { route: [to('a')], fault: {} }
    ]
  })
  assert.deepEqual(v.http.map(r => r.fault), [
    { delay: { ms: 2000, percent: 12.5 }, abort: { httpStatus: 503, percent: 10 } },
    { abort: { grpcStatus: 14, percent: 100 } },
    { delay: { ms: 5, percent: 0 } },
    undefined,
    undefined
  ])
})

test('corsPolicy: allowOrigins as string matches, the older allowOrigin as exact names, methods, headers, maxAge in seconds, credentials', () => {
  const [r] = vs('v', { hosts: ['*'], http: [{ route: [to('a')], corsPolicy: { allowOrigins: [{ prefix: 'https://' }], allowOrigin: ['*'], allowMethods: ['GET'], exposeHeaders: ['x-id'], maxAge: '90s', allowCredentials: true } }] }).http
  assert.deepEqual(r?.cors, { origins: [{ kind: 'prefix', value: 'https://' }, { kind: 'exact', value: '*' }], methods: ['GET'], headers: [], expose: ['x-id'], maxAgeSeconds: 90, credentials: true, allPreflights: false })
})

test('directResponse: a status and a body given as a string or base64 bytes; no route needed', () => {
  const v = vs('v', { hosts: ['*'], http: [{ directResponse: { status: 503, body: { string: 'down' } } }, { directResponse: { status: 200, body: { bytes: 'b2s=' } } }, { directResponse: { status: 204 } }] })
  assert.deepEqual(v.http.map(r => [r.direct?.status, r.direct?.body.toString()]), [[503, 'down'], [200, 'ok'], [204, '']])
})

test('odd objects are rejected with GatewayResourceError, never another exception', () => {
  const odd: unknown[] = [null, 7, 'x', [], { servers: 'no' }, { servers: [null] }, { servers: [{ port: null, hosts: ['*'] }] }, { servers: [{ port: { number: 80 }, hosts: [{}] }] },
    { hosts: [1] }, { hosts: ['*'], http: [{ match: 'm' }] }, { hosts: ['*'], http: [{ match: [{ headers: { a: 5 } }], route: [{ destination: { host: 'x' }, weight: -1 }] }] },
    { hosts: ['*'], tcp: [{ route: [] }] }, { hosts: ['*'], http: [{ route: [{ destination: { host: 'x' } }], retries: { attempts: 1e9 } }] }, { hosts: ['*'], http: [{ route: [{ destination: { host: 'x', port: { number: 'eighty' } } }] }] }]
  for (const spec of odd) {
    for (const parse of [parseGateway, parseVirtualService]) {
      try {
        parse({ kind: 'X', metadata: { name: 'odd', namespace: 'default' }, spec } as never)
      } catch (err) {
        assert.ok(err instanceof GatewayResourceError, `${JSON.stringify(spec)}: ${String(err)}`)
      }
    }
  }
})
