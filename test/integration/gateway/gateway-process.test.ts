// `edgemesh gateway` as a user runs it: a real process reading Istio Gateways,
// VirtualServices, Secrets, Services and EndpointSlices from a standalone file
// (rewritten between steps; the API-server path is in test/e2e/gateway), real
// backends on loopback, curl, Node's HTTP, TLS and WebSocket clients.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { WebSocketServer } from 'ws'
import { freePort } from '../../helpers/net.ts'
import { startGateway, until, stopGateway } from '../../helpers/gateway-process.ts'
import { makeCerts, tlsSecret } from '../../helpers/certs.ts'
import type { TestCerts } from '../../helpers/certs.ts'

type Obj = Record<string, unknown>

function service (name: string, port: number, backendPort: number, portName = 'http'): Obj[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIP: '10.96.0.1', ports: [{ name: portName, port, protocol: 'TCP' }] } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } }, addressType: 'IPv4', ports: [{ name: portName, port: backendPort, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.1'] }] }
  ]
}

const vs = (name: string, spec: Obj): Obj => ({ apiVersion: 'networking.istio.io/v1beta1', kind: 'VirtualService', metadata: { name, namespace: 'default' }, spec })
const gw = (name: string, servers: Obj[]): Obj => ({ apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name, namespace: 'default' }, spec: { selector: { kubeedge: 'edgemesh-gateway' }, servers } })
const dest = (host: string, extra: Obj = {}): Obj => ({ destination: { host, port: { number: 80 } }, ...extra })

async function get (port: number, path: string, headers: Record<string, string> = {}, agent?: http.Agent): Promise<{ status: number, body: string, headers: http.IncomingHttpHeaders }> {
  return await new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: agent ?? false }, res => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => { body += d }).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
    })
    req.on('error', reject)
  })
}

async function curl (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise(resolve => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, stdout, stderr }))
  })
}

describe('edgemesh gateway: Istio routes from a standalone file', () => {
  let dir: string
  let world: string
  let proc: ChildProcess | undefined
  const logs: string[] = []
  let certs: TestCerts
  const servers: Array<{ close: () => void }> = []
  const ports = {} as Record<'gw' | 'tcp' | 'tls' | 'mtls' | 'pass' | 'status' | 'a' | 'b' | 'slow' | 'flaky' | 'ws' | 'echo' | 'tls-a' | 'tls-b' | 'shadow' | 'dead' | 'stall', number>
  let flakyCount = 0
  /** What the mirror's backend received. */
  const shadowed: Array<{ method: string, url: string, host: string, body: string }> = []
  /** What the file holds besides the objects a test swaps in. */
  let base: Obj[] = []

  async function writeWorld (objects: Obj[]): Promise<void> {
    const tmp = `${world}.tmp`
    await writeFile(tmp, objects.map(o => stringify(o)).join('---\n'))
    await rename(tmp, world)
  }

  function httpBackend (name: string, handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void): http.Server {
    const s = http.createServer(handler ?? ((req, res) => {
      res.setHeader('x-backend', name)
      res.setHeader('x-remove-me', 'yes')
      res.end(JSON.stringify({ name, url: req.url, host: req.headers.host, headers: req.headers }))
    }))
    servers.push({ close: () => { s.closeAllConnections(); s.close() } })
    return s
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'em-gw-'))
    world = join(dir, 'world.yaml')
    certs = makeCerts()
    for (const name of ['gw', 'tcp', 'tls', 'mtls', 'pass', 'status'] as const) ports[name] = await freePort()
    const listen = async (s: net.Server): Promise<number> => { s.listen(0, '127.0.0.1'); await once(s, 'listening'); return (s.address() as net.AddressInfo).port }
    ports.a = await listen(httpBackend('a'))
    ports.b = await listen(httpBackend('b'))
    ports.slow = await listen(httpBackend('slow', (_req, res) => { setTimeout(() => res.end('late'), 2000).unref() }))
    ports.flaky = await listen(httpBackend('flaky', (_req, res) => {
      flakyCount++
      res.statusCode = flakyCount % 2 === 1 ? 503 : 200
      res.end(`flaky ${flakyCount}`)
    }))
    ports.shadow = await listen(httpBackend('shadow', (req, res) => {
      let body = ''
      req.setEncoding('utf8').on('data', (d: string) => { body += d }).on('end', () => {
        shadowed.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host ?? '', body })
        res.statusCode = 500
        res.end('the mirror\'s answer goes nowhere')
      })
    }))
    ports.dead = await freePort()
    // Reads nothing of a request for 3 s.
    ports.stall = await listen(httpBackend('stall', (_req, res) => { setTimeout(() => res.end('late'), 3000).unref() }))
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await once(wss, 'listening')
    wss.on('connection', (ws, req) => ws.on('message', data => ws.send(`echo ${req.url ?? ''} ${String(data)}`)))
    servers.push({ close: () => { for (const c of wss.clients) c.terminate(); wss.close() } })
    ports.ws = (wss.address() as net.AddressInfo).port
    const echo = net.createServer(s => s.pipe(s))
    servers.push({ close: () => echo.close() })
    ports.echo = await listen(echo)
    for (const name of ['a', 'b'] as const) {
      const pair = certs.issue(`${name}.example.com`, [`${name}.example.com`])
      const s = https.createServer(pair, (_req, res) => res.end(`tls backend ${name}`))
      servers.push({ close: () => { s.closeAllConnections(); s.close() } })
      ports[`tls-${name}`] = await listen(s)
    }

    base = [
      ...service('svc-a', 80, ports.a), ...service('svc-b', 80, ports.b), ...service('slow', 80, ports.slow),
      ...service('flaky', 80, ports.flaky), ...service('ws', 80, ports.ws), ...service('echo', 80, ports.echo, 'tcp'),
      ...service('shadow', 80, ports.shadow), ...service('dead', 80, ports.dead), ...service('stall', 80, ports.stall),
      ...service('tls-a', 80, ports['tls-a'], 'https'), ...service('tls-b', 80, ports['tls-b'], 'https'),
      // Upstream's hostname-lb-random-gateway.yaml, without its Deployment, on another port.
      ...service('hostname-lb-svc', 12345, ports.a, 'http-0'),
      gw('edgemesh-gateway', [{ hosts: ['*'], port: { name: 'http-0', number: ports.gw, protocol: 'HTTP' } }]),
      { apiVersion: 'networking.istio.io/v1alpha3', kind: 'DestinationRule', metadata: { name: 'hostname-lb-svc', namespace: 'default' }, spec: { host: 'hostname-lb-edge', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } } },
      vs('edgemesh-gateway-svc', {
        gateways: ['edgemesh-gateway'],
        hosts: ['*'],
        http: [
          { match: [{ uri: { prefix: '/b' } }], route: [dest('svc-b')] },
          { match: [{ uri: { prefix: '/split' } }], route: [dest('svc-a', { weight: 80 }), dest('svc-b', { weight: 20 })] },
          { match: [{ uri: { prefix: '/old' } }], redirect: { uri: '/new', redirectCode: 302 } },
          { match: [{ uri: { prefix: '/api/' } }], rewrite: { uri: '/v2/', authority: 'internal.example' }, route: [dest('svc-a')], headers: { request: { set: { 'x-set': 'on' }, remove: ['x-secret'] }, response: { add: { 'x-gw': 'edge' }, remove: ['x-remove-me'] } } },
          { match: [{ uri: { prefix: '/slow' } }], timeout: '300ms', route: [dest('slow')] },
          { match: [{ uri: { prefix: '/flaky-retried' } }], retries: { attempts: 2, retryOn: '5xx' }, route: [dest('flaky')] },
          { match: [{ uri: { prefix: '/ws' } }], route: [dest('ws')] },
          { match: [{ uri: { prefix: '/mirrored' } }], route: [dest('svc-a')], mirror: { host: 'shadow', port: { number: 80 } } },
          { match: [{ uri: { prefix: '/half-mirrored' } }], route: [dest('svc-a')], mirror: { host: 'shadow', port: { number: 80 } }, mirrorPercentage: { value: 50 } },
          { match: [{ uri: { prefix: '/fault-delay' } }], route: [dest('svc-a')], timeout: '300ms', fault: { delay: { fixedDelay: '500ms', percentage: { value: 100 } } } },
          { match: [{ uri: { prefix: '/fault-abort' } }], route: [dest('svc-a')], fault: { abort: { httpStatus: 418, percentage: { value: 100 } } } },
          { match: [{ uri: { prefix: '/fault-half' } }], route: [dest('svc-a')], fault: { abort: { httpStatus: 503, percentage: { value: 50 } } } },
          { match: [{ uri: { prefix: '/fault-unset' } }], route: [dest('svc-a')], fault: { abort: { httpStatus: 500 } } },
          {
            match: [{ uri: { prefix: '/cors' } }],
            route: [dest('svc-a')],
            corsPolicy: { allowOrigins: [{ exact: 'https://app.example' }, { regex: 'https://[a-z]+\\.trusted\\.example' }], allowMethods: ['GET', 'POST'], allowHeaders: ['x-token'], exposeHeaders: ['x-backend'], maxAge: '1h', allowCredentials: true }
          },
          ...['/dest-headers-fast', '/dest-headers-full'].map(prefix => ({
            match: [{ uri: { prefix } }],
            ...(prefix.endsWith('full') ? { timeout: '5s' } : {}),
            headers: { request: { set: { 'x-both': 'route' } } },
            route: [dest('svc-b', { headers: { request: { set: { 'x-both': 'destination', 'x-dest': 'b' } }, response: { add: { 'x-dest-seen': 'yes' }, remove: ['x-remove-me'] } } })]
          })),
          { match: [{ uri: { prefix: '/maintenance' } }], directResponse: { status: 503, body: { string: 'down for maintenance' } }, headers: { response: { set: { 'retry-after': '120' } } } },
          { match: [{ uri: { prefix: '/mirror-stalled' } }], route: [dest('svc-a')], mirror: { host: 'stall', port: { number: 80 } } },
          { match: [{ uri: { prefix: '/mirror-nowhere' } }], route: [dest('svc-a')], mirrors: [{ destination: { host: 'dead', port: { number: 80 } } }, { destination: { host: 'slow', port: { number: 80 } } }] },
          { match: [{ uri: { prefix: '/' } }], route: [{ destination: { host: 'hostname-lb-svc', port: { number: 12345 } } }] }
        ]
      }),
      gw('tcp', [{ hosts: ['*'], port: { number: ports.tcp, protocol: 'TCP' } }]),
      vs('tcp', { gateways: ['tcp'], hosts: ['*'], tcp: [{ route: [dest('echo')] }] }),
      gw('pass', [{ hosts: ['*.example.com'], port: { number: ports.pass, protocol: 'TLS' }, tls: { mode: 'PASSTHROUGH' } }]),
      vs('pass', { gateways: ['pass'], hosts: ['*.example.com'], tls: [{ match: [{ sniHosts: ['a.example.com'] }], route: [dest('tls-a')] }, { match: [{ sniHosts: ['b.example.com'] }], route: [dest('tls-b')] }] }),
      gw('web', [{ hosts: ['web.example.com'], port: { number: ports.tls, protocol: 'HTTPS' }, tls: { mode: 'SIMPLE', credentialName: 'web-cert' } }]),
      vs('web', { gateways: ['web'], hosts: ['web.example.com'], http: [{ route: [dest('svc-a')] }] }),
      tlsSecret('web-cert', certs.issue('web-1', ['web.example.com', '127.0.0.1'])),
      // Upstream's hostname-lb-random-gateway-tls.yaml server, verbatim but for its port.
      gw('edgemesh-gateway-tls', [{ hosts: ['*'], port: { name: 'http-0', number: ports.mtls, protocol: 'HTTP' }, tls: { cipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA', 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA', 'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256', 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256'], credentialName: 'gw-secret', maxProtocolVersion: 'TLSV1_2', minProtocolVersion: 'TLSV1_2', mode: 'MUTUAL' } }]),
      vs('edgemesh-gateway-tls-svc', { gateways: ['edgemesh-gateway-tls'], hosts: ['*'], http: [{ match: [{ uri: { prefix: '/' } }], route: [{ destination: { host: 'hostname-lb-svc', port: { number: 12345 } } }] }] }),
      tlsSecret('gw-secret', certs.issue('gw', ['127.0.0.1']), certs.ca)
    ]
    await writeWorld(base)
    await writeFile(join(dir, 'ca.crt'), certs.ca)
    proc = await startGateway(dir, world, ports.status, logs)
  })

  after(async () => {
    await stopGateway(proc)
    for (const s of servers) s.close()
    certs?.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('two requests on one keep-alive connection reach two services (upstream #386/#396)', async () => {
    const r = await curl(['-v', `http://127.0.0.1:${ports.gw}/who`, `http://127.0.0.1:${ports.gw}/b/x`])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /Re-using existing connection/)
    const bodies = r.stdout.replace(/\}\{/g, '}\n{').split('\n').map(l => JSON.parse(l) as { name: string, url: string })
    assert.deepEqual(bodies.map(b => [b.name, b.url]), [['a', '/who'], ['b', '/b/x']])
  })

  test('a weighted split holds within ±5% over 2,000 requests', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
    const counts: Record<string, number> = {}
    const one = async (): Promise<void> => {
      const r = await get(ports.gw, '/split', {}, agent)
      const name = (JSON.parse(r.body) as { name: string }).name
      counts[name] = (counts[name] ?? 0) + 1
    }
    for (let i = 0; i < 2000; i += 20) await Promise.all(Array.from({ length: 20 }, one))
    agent.destroy()
    const share = (counts.a ?? 0) / 2000
    assert.ok(Math.abs(share - 0.8) <= 0.05, `svc-a got ${share * 100}% (want 80 ± 5)`)
    assert.equal((counts.a ?? 0) + (counts.b ?? 0), 2000)
  })

  test('redirect, rewrite of path and authority, request and response header edits, X-Forwarded-For', async () => {
    const moved = await curl(['-i', `http://127.0.0.1:${ports.gw}/old/page?q=1`])
    assert.match(moved.stdout, /^HTTP\/1.1 302/)
    assert.match(moved.stdout, new RegExp(`location: http://127.0.0.1:${ports.gw}/new/page\\?q=1`, 'i'))
    const r = await get(ports.gw, '/api/items?x=1', { 'x-secret': 'token', 'x-keep': 'k' })
    const body = JSON.parse(r.body) as { url: string, host: string, headers: Record<string, string> }
    assert.equal(body.url, '/v2/items?x=1')
    assert.equal(body.host, 'internal.example')
    assert.equal(body.headers['x-set'], 'on')
    assert.equal(body.headers['x-secret'], undefined)
    assert.equal(body.headers['x-keep'], 'k')
    assert.equal(body.headers['x-forwarded-for'], '127.0.0.1')
    assert.equal(body.headers['x-forwarded-proto'], 'http')
    assert.equal(r.headers['x-gw'], 'edge')
    assert.equal(r.headers['x-remove-me'], undefined)
    assert.equal(r.headers['x-backend'], 'a')
  })

  test('a route timeout answers 504 in time; retries on 5xx hide a flaky backend; no route is 404', async () => {
    const started = performance.now()
    const slow = await get(ports.gw, '/slow')
    assert.equal(slow.status, 504)
    assert.ok(performance.now() - started < 1500, 'the 300 ms timeout, not the backend\'s 2 s')
    flakyCount = 0
    for (let i = 0; i < 6; i++) assert.equal((await get(ports.gw, '/flaky-retried')).status, 200)
    assert.equal(flakyCount, 12, 'each request failed once and was retried once')
    assert.equal((await get(ports.gw, '/', { host: 'x' })).status, 200, '`*` hosts admit any Host')
  })

  test('mirrors get a copy of each request, body and all, with a -shadow host; their answers and failures never reach the client', async () => {
    shadowed.length = 0
    // More than the sockets buffer: backend a answers without reading it, and the mirror still gets all of it.
    const body = 'x'.repeat(900_000)
    await writeFile(join(dir, 'body'), body)
    const posted = await curl(['-X', 'POST', '--data-binary', `@${join(dir, 'body')}`, '-H', 'host: shop.example:8080', `http://127.0.0.1:${ports.gw}/mirrored/cart?id=7`])
    assert.equal(posted.code, 0, posted.stderr)
    const primary = JSON.parse(posted.stdout) as { name: string, url: string, headers: Record<string, string> }
    assert.deepEqual([primary.name, primary.url, primary.headers['content-length']], ['a', '/mirrored/cart?id=7', String(body.length)])
    await until('the mirror got its copy', async () => shadowed.length > 0 ? true : undefined)
    assert.deepEqual(shadowed.map(r => [r.method, r.url, r.host, r.body.length, r.body === body]), [['POST', '/mirrored/cart?id=7', 'shop.example-shadow:8080', body.length, true]])

    // Mirrors that refuse or answer late: the client is answered by the route at once.
    for (let i = 0; i < 3; i++) {
      const started = performance.now()
      const r = await get(ports.gw, '/mirror-nowhere')
      assert.equal(r.status, 200)
      assert.ok(performance.now() - started < 1000, 'not held up by the slow mirror (2 s)')
    }

    // mirrorPercentage 50: 400 requests copy about 200 (three standard deviations: ±30).
    shadowed.length = 0
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
    for (let i = 0; i < 400; i += 20) await Promise.all(Array.from({ length: 20 }, async () => { assert.equal((await get(ports.gw, '/half-mirrored', {}, agent)).status, 200) }))
    agent.destroy()
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.ok(shadowed.length >= 170 && shadowed.length <= 230, `${shadowed.length} of 400 mirrored (want 200 ± 30)`)

    // A mirror that reads nothing falls behind an 8 MB body and is dropped; the request is not held up by it.
    await writeFile(join(dir, 'body8'), 'z'.repeat(8_000_000))
    const started = performance.now()
    const stalled = await curl(['-X', 'POST', '--data-binary', `@${join(dir, 'body8')}`, `http://127.0.0.1:${ports.gw}/mirror-stalled`])
    assert.equal(stalled.code, 0, stalled.stderr)
    assert.equal((JSON.parse(stalled.stdout) as { name: string }).name, 'a')
    assert.ok(performance.now() - started < 2500, 'not held up by the mirror that reads nothing for 3 s')

    const metrics = await (await fetch(`http://127.0.0.1:${ports.status}/metrics`)).text()
    assert.match(metrics, /edgemesh_gateway_mirrored_requests_total\{route="default\/edgemesh-gateway-svc#\d+",outcome="dropped"\} 1\b/)
    assert.match(metrics, /edgemesh_gateway_mirrored_requests_total\{route="default\/edgemesh-gateway-svc#\d+",outcome="answered"\} \d+/)
    assert.match(metrics, /edgemesh_gateway_mirrored_requests_total\{route="default\/edgemesh-gateway-svc#\d+",outcome="failed"\} 3\b/, 'the refused mirror, counted')
  })

  test('Istio fault injection: a delay before the route\'s timeout starts, aborts with a status, on the share asked for', async () => {
    const started = performance.now()
    const delayed = await get(ports.gw, '/fault-delay')
    const took = performance.now() - started
    assert.equal(delayed.status, 200, 'the 300 ms timeout starts after the 500 ms delay, as in Envoy')
    assert.ok(took >= 500 && took < 2000, `answered after ${took.toFixed(0)} ms`)
    const aborted = await get(ports.gw, '/fault-abort')
    assert.deepEqual([aborted.status, aborted.body], [418, 'fault filter abort\n'])
    assert.equal((await get(ports.gw, '/fault-unset')).status, 200, 'without a percentage nothing is aborted (Istio\'s documented default)')
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
    let failed = 0
    for (let i = 0; i < 400; i += 20) {
      await Promise.all(Array.from({ length: 20 }, async () => {
        const r = await get(ports.gw, '/fault-half', {}, agent)
        if (r.status === 503) failed++
        else assert.equal(r.status, 200)
      }))
    }
    agent.destroy()
    assert.ok(failed >= 170 && failed <= 230, `${failed} of 400 aborted (want 200 ± 30)`)
  })

  test('Istio corsPolicy: preflights from allowed origins answered by the gateway, their requests get the allow headers, other origins pass untouched', async () => {
    const preflight = await curl(['-i', '-X', 'OPTIONS', '-H', 'origin: https://app.example', '-H', 'access-control-request-method: POST', '-H', 'access-control-request-headers: x-token', `http://127.0.0.1:${ports.gw}/cors/items`])
    assert.match(preflight.stdout, /^HTTP\/1\.1 200/)
    for (const line of ['access-control-allow-origin: https://app.example', 'access-control-allow-methods: GET,POST', 'access-control-allow-headers: x-token', 'access-control-max-age: 3600', 'access-control-allow-credentials: true']) {
      assert.ok(preflight.stdout.includes(line), `${line} in\n${preflight.stdout}`)
    }
    assert.doesNotMatch(preflight.stdout, /x-backend/i, 'answered by the gateway, not the backend')

    const allowed = await get(ports.gw, '/cors/items', { origin: 'https://shop.trusted.example' })
    assert.equal(JSON.parse(allowed.body).name, 'a')
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://shop.trusted.example')
    assert.equal(allowed.headers['access-control-allow-credentials'], 'true')
    assert.equal(allowed.headers['access-control-expose-headers'], 'x-backend')

    const other = await get(ports.gw, '/cors/items', { origin: 'https://evil.example' })
    assert.equal(other.status, 200)
    assert.equal(other.headers['access-control-allow-origin'], undefined)
    const otherPreflight = await curl(['-i', '-X', 'OPTIONS', '-H', 'origin: https://evil.example', '-H', 'access-control-request-method: POST', `http://127.0.0.1:${ports.gw}/cors/items`])
    assert.match(otherPreflight.stdout, /x-backend: a/i, 'a preflight from another origin goes to the backend')
    assert.doesNotMatch(otherPreflight.stdout, /access-control-allow-origin/i)
  })

  test('header edits of a destination apply to its requests and responses, before the route\'s (fast path and full handler)', async () => {
    for (const path of ['/dest-headers-fast', '/dest-headers-full']) {
      const r = await get(ports.gw, path)
      const body = JSON.parse(r.body) as { name: string, headers: Record<string, string> }
      assert.deepEqual([body.name, body.headers['x-dest'], body.headers['x-both']], ['b', 'b', 'route'], `${path}: the route's edit wins a clash, as in Envoy`)
      assert.equal(r.headers['x-dest-seen'], 'yes', path)
      assert.equal(r.headers['x-remove-me'], undefined, path)
    }
  })

  test('Istio directResponse: answered by the gateway with its status, body and the route\'s response headers, on every request of a connection', async () => {
    const r = await curl(['-i', `http://127.0.0.1:${ports.gw}/maintenance`, `http://127.0.0.1:${ports.gw}/maintenance/x`])
    assert.equal(r.code, 0, r.stderr)
    const answers = r.stdout.split('HTTP/1.1 ').slice(1)
    assert.equal(answers.length, 2)
    for (const a of answers) {
      assert.match(a, /^503 /)
      assert.match(a, /retry-after: 120/i)
      assert.match(a, /content-type: text\/plain/i)
      assert.match(a, /down for maintenance$/)
    }
  })

  test('Istio delegate: a root VirtualService hands /shop to another, whose edits apply alone; a missing delegate is logged and not served', async () => {
    const root = vs('shop', { gateways: ['edgemesh-gateway'], hosts: ['shop.example.com'], http: [{ match: [{ uri: { prefix: '/shop' } }], delegate: { name: 'shop-routes' }, headers: { request: { set: { 'x-from-root': 'yes' } } } }] })
    const routes = (bTo: string): Obj => vs('shop-routes', { http: [{ match: [{ uri: { prefix: '/shop/b' } }], route: [dest(bTo)] }, { match: [{ uri: { prefix: '/other' } }], route: [dest('svc-b')] }, { route: [dest('svc-a')] }] })
    const name = async (path: string): Promise<string> => {
      const r = await get(ports.gw, path, { host: 'shop.example.com' })
      return r.status === 200 ? `${(JSON.parse(r.body) as { name: string, headers: Record<string, string> }).name}${(JSON.parse(r.body) as { headers: Record<string, string> }).headers['x-from-root'] === 'yes' ? '+root' : ''}` : String(r.status)
    }
    await writeWorld([...base, root, routes('svc-b')])
    await until('delegated routes served', async () => await name('/shop/b/1') === 'b+root' ? true : undefined)
    assert.equal(await name('/shop/cart'), 'a+root')
    assert.equal(await name('/other'), '404', 'a delegate route outside /shop is not served')
    await until('the log names the delegate route outside the root\'s match', async () => logs.some(l => l.includes('gateway route not served') && l.includes('default/shop-routes spec.http[1].match is not within')) ? true : undefined)
    // The delegate's owner edits only the delegate.
    await writeWorld([...base, root, routes('svc-a')])
    await until('the delegate\'s edit applied', async () => await name('/shop/b/1') === 'a+root' ? true : undefined)
    await writeWorld([...base, root])
    await until('without its delegate the root route serves nothing', async () => await name('/shop/b/1') === '404' ? true : undefined)
    assert.ok(logs.some(l => l.includes('gateway route not served') && l.includes('VirtualService default/shop-routes does not exist')))
    await writeWorld(base)
  })

  test('Expect: 100-continue is answered by the gateway and the request forwarded without it', async () => {
    const r = await curl(['-v', '-X', 'POST', '-H', 'Expect: 100-continue', '--data-binary', 'hello', `http://127.0.0.1:${ports.gw}/b/upload`])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /< HTTP\/1\.1 100 Continue/)
    const body = JSON.parse(r.stdout) as { name: string, url: string, headers: Record<string, string> }
    assert.deepEqual([body.name, body.url, body.headers.expect, body.headers['content-length']], ['b', '/b/upload', undefined, '5'])
  })

  test('a backend that answers before reading a large body: the next request on the connection is served', async () => {
    await writeFile(join(dir, 'big'), 'y'.repeat(900_000))
    const r = await curl(['-v', '-X', 'POST', '--data-binary', `@${join(dir, 'big')}`, `http://127.0.0.1:${ports.gw}/b/one`, `http://127.0.0.1:${ports.gw}/b/two`])
    assert.equal(r.code, 0, r.stderr)
    const bodies = r.stdout.replace(/\}\{/g, '}\n{').split('\n').map(l => JSON.parse(l) as { name: string, url: string })
    assert.deepEqual(bodies.map(b => [b.name, b.url]), [['b', '/b/one'], ['b', '/b/two']])
  })

  test('clients that leave before or during the response do not disturb the gateway', async () => {
    const leave = async (path: string, afterMs: number): Promise<void> => {
      const c = net.connect(ports.gw, '127.0.0.1')
      c.on('error', () => {})
      await once(c, 'connect')
      c.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`)
      await new Promise(resolve => setTimeout(resolve, afterMs))
      c.destroy()
    }
    // Before the head (the slow backend answers after 2 s; no route timeout on /b), right after it, mid-way.
    await Promise.all([...Array.from({ length: 20 }, async () => await leave('/b/x', 0)), ...Array.from({ length: 20 }, async () => await leave('/b/x', 2)), ...Array.from({ length: 20 }, async () => await leave('/slow', 50))])
    await new Promise(resolve => setTimeout(resolve, 2500))
    assert.equal(proc?.exitCode, null, 'the gateway is still running')
    assert.equal((await get(ports.gw, '/b/after')).status, 200)
  })

  test('WebSocket upgrades are routed and spliced', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${ports.gw}/ws/chat`)
    await once(ws as unknown as EventTarget, 'open' as never)
    const reply = new Promise<string>(resolve => ws.addEventListener('message', e => resolve(String(e.data)), { once: true }))
    ws.send('hello')
    assert.equal(await reply, 'echo /ws/chat hello')
    ws.close()
  })

  test('TCP routes pipe bytes both ways; TLS passthrough routes by SNI without terminating', async () => {
    const c = net.connect(ports.tcp, '127.0.0.1')
    await once(c, 'connect')
    c.write('ping')
    const [data] = await once(c, 'data') as [Buffer]
    assert.equal(data.toString(), 'ping')
    c.destroy()
    for (const name of ['a', 'b']) {
      const s = tls.connect({ host: '127.0.0.1', port: ports.pass, servername: `${name}.example.com`, ca: certs.ca })
      await once(s, 'secureConnect')
      assert.equal(s.getPeerCertificate().subject.CN, `${name}.example.com`, 'the backend\'s own certificate')
      s.end(`GET / HTTP/1.1\r\nhost: ${name}.example.com\r\nconnection: close\r\n\r\n`)
      let text = ''
      for await (const chunk of s) text += String(chunk)
      assert.match(text, new RegExp(`tls backend ${name}$`))
    }
  })

  test('SIMPLE TLS from a Secret, rotated without a restart', async () => {
    const served = await curl(['--cacert', join(dir, 'ca.crt'), '--resolve', `web.example.com:${ports.tls}:127.0.0.1`, `https://web.example.com:${ports.tls}/`])
    assert.equal(served.code, 0, served.stderr)
    assert.equal((JSON.parse(served.stdout) as { name: string }).name, 'a')
    const serial = async (servername?: string): Promise<string> => {
      const s = tls.connect({ host: '127.0.0.1', port: ports.tls, ca: certs.ca, ...(servername !== undefined ? { servername } : { checkServerIdentity: () => undefined }) })
      await once(s, 'secureConnect')
      const cn = s.getPeerCertificate().subject.CN
      s.destroy()
      return String(cn ?? '')
    }
    assert.equal(await serial('web.example.com'), 'web-1')
    const open = tls.connect({ host: '127.0.0.1', port: ports.tls, servername: 'web.example.com', ca: certs.ca })
    await once(open, 'secureConnect')
    await writeWorld(base.map(o => (o.metadata as { name: string }).name === 'web-cert' && o.kind === 'Secret' ? tlsSecret('web-cert', certs.issue('web-2', ['web.example.com', '127.0.0.1'])) : o))
    await until('rotated certificate served', async () => await serial('web.example.com') === 'web-2' ? true : undefined)
    assert.equal(await serial(), 'web-2', 'clients without SNI get the new certificate too')
    open.write('GET / HTTP/1.1\r\nhost: web.example.com\r\n\r\n')
    const [reply] = await once(open, 'data') as [Buffer]
    assert.match(reply.toString(), /^HTTP\/1.1 200/, 'a connection opened before the rotation keeps working')
    open.destroy()
  })

  test('MUTUAL (upstream\'s TLS example) refuses a client without a certificate and serves one with', async () => {
    const client = certs.issue('client')
    await writeFile(join(dir, 'client.crt'), client.cert)
    await writeFile(join(dir, 'client.key'), client.key)
    const url = `https://127.0.0.1:${ports.mtls}/who`
    const without = await curl(['--cacert', join(dir, 'ca.crt'), url])
    assert.notEqual(without.code, 0, 'no client certificate, no answer')
    const withCert = await curl(['--cacert', join(dir, 'ca.crt'), '--cert', join(dir, 'client.crt'), '--key', join(dir, 'client.key'), '--tls-max', '1.2', url])
    assert.equal(withCert.code, 0, withCert.stderr)
    assert.equal((JSON.parse(withCert.stdout) as { url: string }).url, '/who')
    const tls13 = tls.connect({ host: '127.0.0.1', port: ports.mtls, ca: certs.ca, cert: client.cert, key: client.key, minVersion: 'TLSv1.3' })
    const [err] = await once(tls13, 'error') as [Error]
    assert.match(err.message, /version|protocol/i, 'maxProtocolVersion TLSV1_2 holds')
  })

  test('a port another process holds: /readyz names the port and address, and readiness returns when the Gateway lets go of it', async () => {
    const readyz = async (): Promise<{ status: number, body: string }> => {
      const r = await fetch(`http://127.0.0.1:${ports.status}/readyz`)
      return { status: r.status, body: await r.text() }
    }
    assert.equal((await readyz()).status, 200)
    // svc-a's backend listens on 127.0.0.1:ports.a: a Gateway asking for that port cannot bind it.
    await writeWorld([...base, gw('taken', [{ hosts: ['*'], port: { number: ports.a, protocol: 'HTTP' } }])])
    const notReady = await until('not ready', async () => { const r = await readyz(); return r.status === 503 ? r : undefined })
    assert.equal(notReady.body, `not ready: gateway port ${ports.a} on 127.0.0.1: EADDRINUSE\n`)
    assert.equal((await get(ports.gw, '/b/x')).status, 200, 'the other listeners keep serving')
    // The holder goes away; the next change of the Gateways binds the port.
    const holder = net.createServer()
    holder.listen(0, '127.0.0.1')
    await once(holder, 'listening')
    const freed = (holder.address() as net.AddressInfo).port
    await writeWorld([...base, gw('taken', [{ hosts: ['*'], port: { number: freed, protocol: 'HTTP' } }])])
    await until('not ready on the second port', async () => (await readyz()).body.includes(`port ${freed} on 127.0.0.1: EADDRINUSE`) ? true : undefined)
    holder.close()
    await writeWorld([...base, gw('taken', [{ hosts: ['*'], port: { number: freed, protocol: 'HTTP' } }]), vs('touch', { gateways: ['taken'], hosts: ['*'], http: [{ route: [dest('svc-b')] }] })])
    await until('ready again', async () => (await readyz()).status === 200 ? true : undefined)
    assert.equal(JSON.parse((await get(freed, '/x')).body).name, 'b', 'the freed port serves its route')
    await writeWorld(base)
  })

  test('DestinationRule subsets select endpoints by their Pods\' labels; an undefined subset answers 503', async () => {
    // Two Pods of one Service on one port, told apart by address (127.0.0.2 is loopback too) and by label.
    const port = await freePort()
    for (const [ip, version] of [['127.0.0.1', 'v1'], ['127.0.0.2', 'v2']] as const) {
      const s = httpBackend(version, (_req, res) => res.end(`version ${version}`))
      s.listen(port, ip)
      await once(s, 'listening')
    }
    const pod = (name: string, version: string): Obj => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app: 'versions', version } } })
    await writeWorld([
      ...base,
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'versions', namespace: 'default' }, spec: { clusterIP: '10.96.0.9', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'versions-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'versions' } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port, protocol: 'TCP' }],
        endpoints: [
          { addresses: ['127.0.0.1'], targetRef: { kind: 'Pod', name: 'versions-a', namespace: 'default' } },
          { addresses: ['127.0.0.2'], targetRef: { kind: 'Pod', name: 'versions-b', namespace: 'default' } }
        ]
      },
      pod('versions-a', 'v1'),
      pod('versions-b', 'v2'),
      { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'versions', namespace: 'default' }, spec: { host: 'versions', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] } },
      gw('subsets', [{ hosts: ['subsets.example'], port: { number: ports.gw, protocol: 'HTTP' } }]),
      vs('subsets', {
        gateways: ['subsets'],
        hosts: ['subsets.example'],
        http: [
          { match: [{ uri: { prefix: '/canary' } }], route: [{ destination: { host: 'versions', subset: 'v1' }, weight: 75 }, { destination: { host: 'versions', subset: 'v2' }, weight: 25 }] },
          { match: [{ uri: { prefix: '/v2' } }], route: [{ destination: { host: 'versions', subset: 'v2' } }] },
          { match: [{ uri: { prefix: '/v3' } }], route: [{ destination: { host: 'versions', subset: 'v3' } }] },
          { route: [{ destination: { host: 'versions', subset: 'v1' } }] }
        ]
      })
    ])
    const agent = new http.Agent({ keepAlive: true })
    await until('subsets served', async () => (await get(ports.gw, '/v2', { host: 'subsets.example' }, agent)).body === 'version v2' ? true : undefined)
    for (let i = 0; i < 20; i++) {
      assert.equal((await get(ports.gw, '/', { host: 'subsets.example' }, agent)).body, 'version v1')
      assert.equal((await get(ports.gw, '/v2', { host: 'subsets.example' }, agent)).body, 'version v2')
    }
    const counts: Record<string, number> = {}
    for (let i = 0; i < 400; i++) {
      const body = (await get(ports.gw, '/canary', { host: 'subsets.example' }, agent)).body
      counts[body] = (counts[body] ?? 0) + 1
    }
    assert.ok(Math.abs((counts['version v1'] ?? 0) / 400 - 0.75) < 0.08, JSON.stringify(counts))
    const undefinedSubset = await get(ports.gw, '/v3', { host: 'subsets.example' }, agent)
    assert.equal(undefinedSubset.status, 503)
    assert.match(undefinedSubset.body, /subset v3 of default\/versions is not defined by a DestinationRule/)
    agent.destroy()
    await writeWorld(base)
  })

  test('an invalid VirtualService is rejected naming the field; a VirtualService swapped 20 times under 200 requests/s fails none', async () => {
    const swapped = (target: string): Obj => vs('swap', { gateways: ['edgemesh-gateway'], hosts: ['swap.example.com'], http: [{ route: [dest(target)] }] })
    const bad = vs('broken', { gateways: ['edgemesh-gateway'], hosts: ['*'], http: [{ match: [{ uri: { regex: '([' } }], route: [dest('svc-a')] }] })
    await writeWorld([...base, swapped('svc-a'), bad])
    await until('swap route served', async () => (await get(ports.gw, '/', { host: 'swap.example.com' })).body.includes('"name":"a"') ? true : undefined)
    await until('the log names the resource and the field', async () => logs.some(l => l.includes('gateway resource rejected') && l.includes('default/broken') && l.includes('spec.http[0].match[0].uri.regex')) ? true : undefined)
    const status = await (await fetch(`http://127.0.0.1:${ports.status}/status`)).json() as { gateway: { rejected: Record<string, string> } }
    assert.match(status.gateway.rejected['VirtualService default/broken'] ?? '', /uri\.regex/)
    assert.equal((await get(ports.gw, '/b/still')).status, 200, 'everything else keeps serving')

    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
    const seen: Record<string, number> = {}
    let failures = 0
    let sent = 0
    const state = { running: true }
    const load = (async () => {
      const inflight = new Set<Promise<void>>()
      const start = performance.now()
      while (state.running) {
        // 200 requests/s: one every 5 ms, on schedule.
        const due = start + sent * 5
        const wait = due - performance.now()
        if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
        sent++
        const p = get(ports.gw, '/', { host: 'swap.example.com' }, agent).then(r => {
          if (r.status !== 200) { failures++; return }
          const name = (JSON.parse(r.body) as { name: string }).name
          seen[name] = (seen[name] ?? 0) + 1
        }, () => { failures++ }).finally(() => inflight.delete(p))
        inflight.add(p)
      }
      await Promise.all(inflight)
    })()
    for (let i = 0; i < 20; i++) {
      await new Promise(resolve => setTimeout(resolve, 1500))
      await writeWorld([...base, swapped(i % 2 === 0 ? 'svc-b' : 'svc-a'), bad])
    }
    state.running = false
    await load
    agent.destroy()
    assert.equal(failures, 0, `${failures} of ${sent} requests failed`)
    assert.ok(sent >= 5000, `${sent} requests sent in 30 s`)
    assert.ok((seen.a ?? 0) > 0 && (seen.b ?? 0) > 0, 'both versions of the route served')
    await writeWorld(base)
  })
})
