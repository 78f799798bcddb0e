import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildRouteTable, CONTROLLER_NAME, desiredStatus, translateGatewayApi } from '../../../src/gateway/index.ts'
import type { HttpRequestFacts } from '../../../src/gateway/index.ts'
import { rewritePath } from '../../../src/gateway/http-handler.ts'
import type { KubeObject } from '../../../src/kube/types.ts'

const G = 'gateway.networking.k8s.io/v1'
type Obj = KubeObject & Record<string, unknown>

const gatewayClass: Obj = { apiVersion: G, kind: 'GatewayClass', metadata: { name: 'edgemesh' }, spec: { controllerName: CONTROLLER_NAME } }
const otherClass: Obj = { apiVersion: G, kind: 'GatewayClass', metadata: { name: 'istio' }, spec: { controllerName: 'istio.io/gateway-controller' } }

function gw (name: string, listeners: unknown[], opts: { namespace?: string, className?: string } = {}): Obj {
  return { apiVersion: G, kind: 'Gateway', metadata: { name, namespace: opts.namespace ?? 'default', generation: 3 }, spec: { gatewayClassName: opts.className ?? 'edgemesh', listeners } }
}

function route (kind: string, name: string, spec: Record<string, unknown>, opts: { namespace?: string, created?: string } = {}): Obj {
  return { apiVersion: G, kind, metadata: { name, namespace: opts.namespace ?? 'default', creationTimestamp: opts.created ?? '2026-01-01T00:00:00Z', generation: 1 }, spec }
}

const http = (name = 'http', port = 80, extra: Record<string, unknown> = {}): unknown => ({ name, port, protocol: 'HTTP', ...extra })
const parent = (name = 'gw', extra: Record<string, unknown> = {}): unknown => ({ name, ...extra })
const backend = (name: string, extra: Record<string, unknown> = {}): unknown => ({ name, port: 80, ...extra })

function translate (objects: Obj[], opts: { services?: string[], secrets?: string[], namespaces?: Record<string, Record<string, string>> } = {}): ReturnType<typeof translateGatewayApi> {
  const services = new Set(opts.services ?? ['default/a', 'default/b', 'default/c', 'other/x'])
  const of = (kind: string): Obj[] => objects.filter(o => o.kind === kind)
  return translateGatewayApi({
    classes: [gatewayClass, otherClass],
    gateways: of('Gateway'),
    routes: (['HTTPRoute', 'GRPCRoute', 'TLSRoute', 'TCPRoute'] as const).map(kind => ({ kind, objects: of(kind) })),
    grants: of('ReferenceGrant'),
    namespaceLabels: ns => opts.namespaces?.[ns],
    serviceExists: key => services.has(key),
    secretProblem: key => (opts.secrets ?? ['default/cert']).includes(key) ? undefined : 'not found'
  })
}

function req (path: string, extra: Partial<HttpRequestFacts> & { headers?: Record<string, string> } = {}): HttpRequestFacts {
  const headers = extra.headers ?? {}
  return { authority: 'example.com', method: 'GET', scheme: 'http', ...extra, path, header: n => headers[n] }
}

function conditionsOf (model: ReturnType<typeof translate>, key: string): Record<string, string> {
  const parents = model.routeStatus.get(key)?.parents ?? []
  return Object.fromEntries(parents.flatMap(p => p.conditions.map(c => [c.type, `${c.status} ${c.reason}`])))
}

test('precedence across HTTPRoutes: exact path, then the longest prefix, then method, headers and query; prefixes match whole segments', () => {
  const model = translate([
    gw('gw', [http()]),
    route('HTTPRoute', 'old', { parentRefs: [parent()], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [backend('a')] }] }, { created: '2025-01-01T00:00:00Z' }),
    route('HTTPRoute', 'new', {
      parentRefs: [parent()],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [backend('b')] },
        { matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'X-Version', value: '2' }] }], backendRefs: [backend('c')] },
        { matches: [{ path: { type: 'Exact', value: '/api/login' } }], backendRefs: [backend('a')] },
        { matches: [{ path: { type: 'PathPrefix', value: '/api' }, method: 'POST' }], backendRefs: [backend('c')] }
      ]
    })
  ])
  const table = buildRouteTable(model.gateways, model.virtualServices)
  const dest = (path: string, extra?: Parameters<typeof req>[1]): string | undefined => table.matchHttp(80, req(path, extra))?.route.route[0]?.service
  assert.equal(dest('/api/users'), 'default/b', 'the longer prefix wins over the older route\'s /')
  assert.equal(dest('/apiary'), 'default/a', '/api does not match /apiary')
  assert.equal(dest('/api'), 'default/b')
  assert.equal(dest('/api/login'), 'default/a', 'exact first')
  assert.equal(dest('/api/x', { method: 'POST', headers: { 'x-version': '2' } }), 'default/c', 'a method outranks headers')
  assert.equal(dest('/api/x', { headers: { 'x-version': '2' } }), 'default/c')
  assert.deepEqual(conditionsOf(model, 'HTTPRoute default/new'), { Accepted: 'True Accepted', ResolvedRefs: 'True ResolvedRefs' })
  const listener = model.gatewayStatus[0]?.listeners[0]
  assert.equal(listener?.attachedRoutes, 2)
  assert.deepEqual(listener?.supportedKinds.map(k => k.kind), ['HTTPRoute', 'GRPCRoute'])
})

test('filters: header modifiers, URLRewrite of a prefix or the full path, redirects; timeouts', () => {
  const model = translate([
    gw('gw', [http()]),
    route('HTTPRoute', 'r', {
      parentRefs: [parent()],
      hostnames: ['example.com'],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/old/' } }],
          filters: [
            { type: 'URLRewrite', urlRewrite: { hostname: 'backend.internal', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } } },
            { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Env', value: 'edge' }], add: [{ name: 'X-Hop', value: '1' }], remove: ['X-Debug'] } },
            { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'Cache-Control', value: 'no-store' }] } }
          ],
          backendRefs: [backend('a')],
          timeouts: { request: '1m30s', backendRequest: '500ms' }
        },
        { matches: [{ path: { type: 'Exact', value: '/full' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/replaced' } } }], backendRefs: [backend('a')] },
        { matches: [{ path: { type: 'PathPrefix', value: '/secure' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https' } }] }
      ]
    })
  ])
  const table = buildRouteTable(model.gateways, model.virtualServices)
  const old = table.matchHttp(80, req('/old/page?q=1'))
  assert.ok(old !== undefined)
  assert.equal(rewritePath('/old/page?q=1', old), '/new/page?q=1')
  assert.equal(rewritePath('/old', old), '/new')
  assert.deepEqual(old.route.rewrite, { authority: 'backend.internal', uri: '/new', fullPath: false })
  assert.deepEqual(old.route.requestHeaders, { set: [['x-env', 'edge']], add: [['x-hop', '1']], remove: ['x-debug'] })
  assert.deepEqual(old.route.responseHeaders.set, [['cache-control', 'no-store']])
  assert.equal(old.route.timeoutMs, 90_000)
  assert.equal(old.route.retries?.perTryTimeoutMs, 500)
  const full = table.matchHttp(80, req('/full?x=1'))
  assert.ok(full !== undefined)
  assert.equal(rewritePath('/full?x=1', full), '/replaced?x=1')
  assert.deepEqual(table.matchHttp(80, req('/secure/a'))?.route.redirect, { code: 302, scheme: 'https', port: 443 })
  assert.equal(table.matchHttp(80, req('/old/page', { authority: 'other.com' })), undefined, 'hostnames limit the route')
})

test('RequestMirror: percent or fraction; a mirror that cannot be served mirrors nothing and says why in ResolvedRefs', () => {
  const mirror = (backendRef: unknown, extra: Record<string, unknown> = {}): unknown => ({ type: 'RequestMirror', requestMirror: { backendRef, ...extra } })
  const model = translate([
    gw('gw', [http('http', 80, { allowedRoutes: { namespaces: { from: 'All' } } })]),
    route('HTTPRoute', 'm', {
      parentRefs: [parent()],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/all' } }], filters: [mirror(backend('b'))], backendRefs: [backend('a')] },
        { matches: [{ path: { type: 'PathPrefix', value: '/some' } }], filters: [mirror(backend('b'), { percent: 25 }), mirror(backend('c'), { fraction: { numerator: 1, denominator: 8 } })], backendRefs: [backend('a')] }
      ]
    }),
    route('HTTPRoute', 'missing', { parentRefs: [parent()], hostnames: ['missing.example'], rules: [{ filters: [mirror(backend('nowhere'))], backendRefs: [backend('a')] }] }),
    route('HTTPRoute', 'cross', { parentRefs: [parent('gw', { namespace: 'default' })], hostnames: ['cross.example'], rules: [{ filters: [mirror(backend('x', { namespace: 'other' }))], backendRefs: [backend('a')] }] }, { namespace: 'team' }),
    route('HTTPRoute', 'both', { parentRefs: [parent()], hostnames: ['both.example'], rules: [{ filters: [mirror(backend('b'), { percent: 5, fraction: { numerator: 1 } })], backendRefs: [backend('a')] }] }),
    route('HTTPRoute', 'over', { parentRefs: [parent()], hostnames: ['over.example'], rules: [{ filters: [mirror(backend('b'), { percent: 101 })], backendRefs: [backend('a')] }] })
  ], { services: ['default/a', 'default/b', 'default/c', 'team/a', 'other/x'] })
  const table = buildRouteTable(model.gateways, model.virtualServices)
  const mirrorsAt = (path: string, authority = 'example.com'): unknown => table.matchHttp(80, req(path, { authority }))?.route.mirrors?.map(m => [m.dest.service, m.dest.port, m.percent])
  assert.deepEqual(mirrorsAt('/all'), [['default/b', 80, 100]])
  assert.deepEqual(mirrorsAt('/some'), [['default/b', 80, 25], ['default/c', 80, 12.5]])
  assert.deepEqual(conditionsOf(model, 'HTTPRoute default/m'), { Accepted: 'True Accepted', ResolvedRefs: 'True ResolvedRefs' })
  assert.equal(mirrorsAt('/', 'missing.example'), undefined)
  assert.deepEqual(conditionsOf(model, 'HTTPRoute default/missing'), { Accepted: 'True Accepted', ResolvedRefs: 'False BackendNotFound' })
  assert.equal(table.matchHttp(80, req('/', { authority: 'missing.example' }))?.route.route[0]?.service, 'default/a', 'the route itself serves')
  assert.deepEqual(conditionsOf(model, 'HTTPRoute team/cross'), { Accepted: 'True Accepted', ResolvedRefs: 'False RefNotPermitted' })
  assert.match(model.routeStatus.get('HTTPRoute default/both')?.parents[0]?.conditions[0]?.message ?? '', /filters\[0\]\.requestMirror holds percent and fraction/)
  assert.match(model.routeStatus.get('HTTPRoute default/over')?.parents[0]?.conditions[0]?.message ?? '', /filters\[0\]\.requestMirror\.percent must be an integer from 0 to 100/)
})

test('CORS filter: origins with a leftmost wildcard, * for all, maxAge 5 s by default; preflights from other origins answered too', () => {
  const model = translate([
    gw('gw', [http()]),
    route('HTTPRoute', 'c', {
      parentRefs: [parent()],
      rules: [{ filters: [{ type: 'CORS', cors: { allowOrigins: ['https://app.example', 'https://*.trusted.example'], allowMethods: ['*'], allowHeaders: ['X-Token'], allowCredentials: true } }], backendRefs: [backend('a')] }]
    }),
    route('HTTPRoute', 'bad', { parentRefs: [parent()], hostnames: ['bad.example'], rules: [{ filters: [{ type: 'CORS', cors: { maxAge: -1 } }], backendRefs: [backend('a')] }] })
  ])
  const cors = buildRouteTable(model.gateways, model.virtualServices).matchHttp(80, req('/'))?.route.cors
  assert.ok(cors !== undefined)
  assert.deepEqual({ ...cors, origins: cors.origins.map(o => o.kind) }, { origins: ['exact', 'regex'], methods: ['*'], headers: ['X-Token'], expose: [], maxAgeSeconds: 5, credentials: true, allPreflights: true })
  const wildcard = cors.origins[1]
  assert.ok(wildcard?.kind === 'regex' && wildcard.re.test('https://a.b.trusted.example') && !wildcard.re.test('https://trusted.example.org') && !wildcard.re.test('http://a.trusted.example'))
  assert.match(model.routeStatus.get('HTTPRoute default/bad')?.parents[0]?.conditions[0]?.message ?? '', /filters\[0\]\.cors\.maxAge must be a non-negative integer/)
})

test('header modifiers on a backendRef apply to that backend only; other filters there are refused, naming the field', () => {
  const model = translate([
    gw('gw', [http()]),
    route('HTTPRoute', 'h', { parentRefs: [parent()], rules: [{ backendRefs: [backend('a', { filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Backend', value: 'a' }] } }, { type: 'ResponseHeaderModifier', responseHeaderModifier: { remove: ['Server'] } }] }), backend('b')] }] }),
    route('HTTPRoute', 'bad', { parentRefs: [parent()], hostnames: ['bad.example'], rules: [{ backendRefs: [backend('a', { filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https' } }] })] }] })
  ])
  const dests = buildRouteTable(model.gateways, model.virtualServices).matchHttp(80, req('/'))?.route.route
  assert.deepEqual(dests?.map(d => [d.service, d.requestHeaders?.set, d.responseHeaders?.remove]), [['default/a', [['x-backend', 'a']], ['server']], ['default/b', undefined, undefined]])
  assert.match(model.routeStatus.get('HTTPRoute default/bad')?.parents[0]?.conditions[0]?.message ?? '', /backendRefs\[0\]\.filters\[0\]\.type "RequestRedirect" is not supported on a backendRef/)
})

test('weights: refused backends keep their share and answer 500; a rule without backends answers 500', () => {
  const model = translate([
    gw('gw', [http()]),
    route('HTTPRoute', 'w', { parentRefs: [parent()], rules: [{ backendRefs: [backend('a', { weight: 90 }), backend('missing', { weight: 10 })] }] }),
    route('HTTPRoute', 'none', { parentRefs: [parent()], hostnames: ['none.example'], rules: [{ backendRefs: [] }] })
  ])
  const table = buildRouteTable(model.gateways, model.virtualServices)
  const dests = table.matchHttp(80, req('/'))?.route.route
  assert.deepEqual(dests?.map(d => [d.service, d.weight, d.invalid !== undefined]), [['default/a', 90, false], ['default/missing', 10, true]])
  assert.deepEqual(conditionsOf(model, 'HTTPRoute default/w'), { Accepted: 'True Accepted', ResolvedRefs: 'False BackendNotFound' })
  assert.equal(table.matchHttp(80, req('/', { authority: 'none.example' }))?.route.route[0]?.invalid, 'the rule has no backend with a weight')
})

test('cross-namespace references need a ReferenceGrant in the target namespace, for backends and certificates', () => {
  const objects = [
    gw('gw', [http('http', 80, { allowedRoutes: { namespaces: { from: 'All' } } }), { name: 'https', port: 443, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'cert', namespace: 'certs' }] } }]),
    route('HTTPRoute', 'cross', { parentRefs: [parent('gw', { namespace: 'default', sectionName: 'http' })], rules: [{ backendRefs: [backend('x', { namespace: 'other' })] }] }, { namespace: 'team' })
  ]
  let model = translate(objects, { secrets: ['certs/cert'] })
  assert.deepEqual(conditionsOf(model, 'HTTPRoute team/cross'), { Accepted: 'True Accepted', ResolvedRefs: 'False RefNotPermitted' })
  const https = model.gatewayStatus[0]?.listeners[1]
  assert.equal(https?.key, undefined, 'the listener is not served')
  assert.ok(https?.conditions.some(c => c.type === 'ResolvedRefs' && c.reason === 'RefNotPermitted'))

  const grant = (namespace: string, fromKind: string, fromNs: string, toKind: string): Obj => ({ apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'ReferenceGrant', metadata: { name: 'g', namespace }, spec: { from: [{ group: 'gateway.networking.k8s.io', kind: fromKind, namespace: fromNs }], to: [{ group: '', kind: toKind }] } })
  model = translate([...objects, grant('other', 'HTTPRoute', 'team', 'Service'), grant('certs', 'Gateway', 'default', 'Secret')], { secrets: ['certs/cert'] })
  assert.deepEqual(conditionsOf(model, 'HTTPRoute team/cross'), { Accepted: 'True Accepted', ResolvedRefs: 'True ResolvedRefs' })
  assert.equal(model.gatewayStatus[0]?.listeners[1]?.key, 'default/gw/https')
  const table = buildRouteTable(model.gateways, model.virtualServices)
  assert.deepEqual(table.listener(443)?.tls?.credentials, [{ hosts: ['*'], secret: 'certs/cert' }])
})

test('attachment: allowedRoutes namespaces (Same, All, Selector), sectionName, hostnames, kinds; other controllers\' Gateways are left alone', () => {
  const model = translate([
    gw('gw', [
      http('same', 80),
      http('selected', 81, { hostname: '*.edge.example', allowedRoutes: { namespaces: { from: 'Selector', selector: { matchLabels: { edge: 'true' } } } } }),
      { name: 'udp', port: 53, protocol: 'UDP' }
    ]),
    gw('theirs', [http()], { className: 'istio' }),
    route('HTTPRoute', 'foreign', { parentRefs: [parent('gw', { namespace: 'default' })], rules: [{ backendRefs: [backend('x')] }] }, { namespace: 'third' }),
    route('HTTPRoute', 'labelled', { parentRefs: [parent('gw', { namespace: 'default', sectionName: 'selected' })], hostnames: ['a.edge.example'], rules: [{ backendRefs: [backend('x')] }] }, { namespace: 'other' }),
    route('HTTPRoute', 'wrong-host', { parentRefs: [parent('gw', { sectionName: 'selected' })], hostnames: ['cloud.example'], rules: [{ backendRefs: [backend('a')] }] }),
    route('HTTPRoute', 'no-section', { parentRefs: [parent('gw', { sectionName: 'nope' })], rules: [{ backendRefs: [backend('a')] }] }),
    route('HTTPRoute', 'not-ours', { parentRefs: [parent('theirs')], rules: [{ backendRefs: [backend('a')] }] }),
    route('TCPRoute', 'tcp-on-http', { parentRefs: [parent('gw', { sectionName: 'same' })], rules: [{ backendRefs: [backend('a')] }] })
  ], { namespaces: { other: { edge: 'true' }, default: { edge: 'true' }, third: {} } })
  assert.equal(conditionsOf(model, 'HTTPRoute third/foreign').Accepted, 'False NotAllowedByListeners')
  assert.equal(conditionsOf(model, 'HTTPRoute other/labelled').Accepted, 'True Accepted')
  assert.equal(conditionsOf(model, 'HTTPRoute default/wrong-host').Accepted, 'False NoMatchingListenerHostname')
  assert.equal(conditionsOf(model, 'HTTPRoute default/no-section').Accepted, 'False NoMatchingParent')
  assert.equal(conditionsOf(model, 'TCPRoute default/tcp-on-http').Accepted, 'False NotAllowedByListeners')
  assert.deepEqual(model.routeStatus.get('HTTPRoute default/not-ours')?.parents, [])
  assert.deepEqual(model.gatewayStatus.map(g => g.object.metadata.name), ['gw'], 'only Gateways of our GatewayClass')
  const udp = model.gatewayStatus[0]?.listeners[2]
  assert.ok(udp?.conditions.some(c => c.type === 'Accepted' && c.status === 'False' && c.reason === 'UnsupportedProtocol'))
  const table = buildRouteTable(model.gateways, model.virtualServices)
  assert.equal(table.matchHttp(81, req('/', { authority: 'a.edge.example' }))?.route.route[0]?.service, 'other/x')
  assert.equal(table.matchHttp(81, req('/', { authority: 'b.edge.example' })), undefined)
})

test('an invalid route is not accepted, names the field, and leaves the others serving; status keeps transition times', () => {
  const objects = [
    gw('gw', [http()]),
    route('HTTPRoute', 'bad', { parentRefs: [parent()], hostnames: ['bad.example'], rules: [{ matches: [{ path: { type: 'RegularExpression', value: '/(' } }], backendRefs: [backend('a')] }] }),
    route('HTTPRoute', 'ext', { parentRefs: [parent()], hostnames: ['ext.example'], rules: [{ filters: [{ type: 'ExtensionRef', extensionRef: { group: 'x.example', kind: 'Auth', name: 'a' } }], backendRefs: [backend('a')] }] }),
    route('HTTPRoute', 'good', { parentRefs: [parent()], rules: [{ backendRefs: [backend('a')] }] })
  ]
  const model = translate(objects)
  const bad = model.routeStatus.get('HTTPRoute default/bad')?.parents[0]?.conditions.find(c => c.type === 'Accepted')
  assert.equal(bad?.reason, 'UnsupportedValue')
  assert.match(bad?.message ?? '', /spec\.rules\[0\]\.matches\[0\]\.path\.value is not a valid regular expression/)
  assert.match(model.routeStatus.get('HTTPRoute default/ext')?.parents[0]?.conditions[0]?.message ?? '', /filters\[0\]\.type "ExtensionRef" is not supported/)
  const table = buildRouteTable(model.gateways, model.virtualServices)
  assert.equal(table.matchHttp(80, req('/x', { authority: 'bad.example' }))?.route.route[0]?.service, 'default/a', 'the good route serves every host')
  assert.equal(model.gatewayStatus[0]?.listeners[0]?.attachedRoutes, 1)

  const writes = desiredStatus(model, { addresses: ['10.0.0.5'], notProgrammed: () => undefined })
  const gwWrite = writes.find(w => w.key === 'Gateway default/gw')
  const status = gwWrite?.status as { addresses: unknown, conditions: Array<{ type: string, status: string, observedGeneration: number, lastTransitionTime: string }>, listeners: Array<{ conditions: Array<{ type: string, status: string }> }> }
  assert.deepEqual(status.addresses, [{ type: 'IPAddress', value: '10.0.0.5' }])
  assert.deepEqual(status.conditions.map(c => [c.type, c.status, c.observedGeneration]), [['Accepted', 'True', 3], ['Programmed', 'True', 3]])
  assert.deepEqual(status.listeners[0]?.conditions.map(c => c.type), ['Accepted', 'Conflicted', 'ResolvedRefs', 'Programmed'])
  // Written back and read again: the same conditions keep their times; a port that stops binding flips Programmed.
  const old = '2026-01-01T00:00:00Z'
  for (const c of status.conditions) c.lastTransitionTime = old
  const again = translate(objects.map(o => o.kind === 'Gateway' ? { ...o, status } : o))
  const next = desiredStatus(again, { addresses: ['10.0.0.5'], notProgrammed: () => 'cannot listen on 10.0.0.5:80: EADDRINUSE' }).find(w => w.key === 'Gateway default/gw')?.status as typeof status
  assert.deepEqual(next.conditions.map(c => [c.type, c.status, c.lastTransitionTime === old]), [['Accepted', 'True', true], ['Programmed', 'False', false]])
})

test('TLSRoute and TCPRoute: passthrough by SNI and plain TCP', () => {
  const model = translate([
    gw('gw', [{ name: 'tls', port: 8443, protocol: 'TLS', tls: { mode: 'Passthrough' } }, { name: 'tcp', port: 9000, protocol: 'TCP' }]),
    route('TLSRoute', 'a', { parentRefs: [parent()], hostnames: ['a.example'], rules: [{ backendRefs: [backend('a', { port: 443 })] }] }),
    route('TLSRoute', 'b', { parentRefs: [parent()], hostnames: ['b.example'], rules: [{ backendRefs: [backend('b', { port: 443 })] }] }),
    route('TCPRoute', 't', { parentRefs: [parent()], rules: [{ backendRefs: [backend('c', { port: 5432 })] }] })
  ])
  const table = buildRouteTable(model.gateways, model.virtualServices)
  assert.equal(table.listener(8443)?.kind, 'passthrough')
  assert.equal(table.tlsRoute(8443, 'a.example')?.route[0]?.service, 'default/a')
  assert.equal(table.tlsRoute(8443, 'b.example')?.route[0]?.service, 'default/b')
  assert.equal(table.tlsRoute(8443, 'c.example'), undefined)
  assert.deepEqual(table.tcpRoute(9000)?.route.map(d => [d.service, d.port]), [['default/c', 5432]])
})
