// The gateway against a real kube-apiserver, as a user following upstream's
// documentation: the edgemesh-gateway chart's ServiceAccount and ClusterRole
// (rendered by real Helm) are all it may use; upstream's three gateway
// examples are applied verbatim; Secrets are created and rotated through the API.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import http from 'node:http'
import tls from 'node:tls'
import { once } from 'node:events'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments, stringify } from 'yaml'
import { startControlPlane, haveControlPlaneTools, eventually, toolsBin } from '../../helpers/control-plane.ts'
import type { ControlPlane } from '../../helpers/control-plane.ts'
import { freePort } from '../../helpers/net.ts'
import { makeCerts, tlsSecret } from '../../helpers/certs.ts'
import { CONTROLLER_NAME } from '../../../src/gateway/index.ts'
import type { TestCerts } from '../../helpers/certs.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const entry = join(root, 'src/bin/edgemesh.ts')
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url))
const PSK = 'edgemesh-ts-test-psk-not-for-any-real-cluster'
const skip = process.getuid?.() !== 0
  ? 'needs root (the backend runs in a network namespace: the API refuses loopback endpoints)'
  : haveControlPlaneTools() && existsSync(join(toolsBin(), 'helm')) ? false : 'control plane or helm not built (npm run tools)'
/** The backend's namespace and its veth pair (198.18.0.0/15 is reserved for tests): EndpointSlices may not name 127.0.0.0/8. */
const NS = `emgw-${process.pid}`
const HOST_IP = '198.18.77.1'
const POD_IP = '198.18.77.2'
// Prints each request's Host and path: the test reads what reached the backend, mirrored copies included.
const backendScript = "require('node:http').createServer((q, s) => { console.log('seen ' + q.headers.host + ' ' + q.url); s.setHeader('x-seen-env', String(q.headers['x-env'])); s.end('hostname-backend ' + q.url) }).listen(9376, process.argv[1], () => console.log('listening'))"

type Obj = { apiVersion: string, kind: string, metadata: { name: string, namespace?: string } } & Record<string, unknown>

function docs (text: string): Obj[] {
  return parseAllDocuments(text).map(d => d.toJS() as Obj).filter(o => o !== null)
}

async function run (cmd: string, args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise(resolve => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, stdout, stderr }))
  })
}

describe('edgemesh gateway against a real API server, with the chart\'s RBAC', { skip }, () => {
  let cp: ControlPlane
  let dir: string
  let certs: TestCerts
  let proc: ChildProcess | undefined
  let backend: ChildProcess | undefined
  const logs: string[] = []
  /** The backend's `seen <host> <path>` lines. */
  const seen: string[] = []

  async function apply (objects: Obj[]): Promise<void> {
    for (const o of objects) await cp.apply(o)
  }

  async function get (path: string, host?: string, port = 23333): Promise<{ status: number, body: string, headers: http.IncomingHttpHeaders }> {
    return await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path, headers: host !== undefined ? { host } : {}, agent: false }, res => {
        let body = ''
        res.setEncoding('utf8').on('data', (d: string) => { body += d }).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      }).on('error', reject)
    })
  }

  /** `type → "status reason"` of a condition list. */
  const conditions = (list: unknown): Record<string, string> => Object.fromEntries(((list ?? []) as Array<{ type: string, status: string, reason: string }>).map(c => [c.type, `${c.status} ${c.reason}`]))
  async function routeConditions (namespace: string, name: string): Promise<Record<string, string>> {
    const r = await cp.request('GET', `/apis/gateway.networking.k8s.io/v1/namespaces/${namespace}/httproutes/${name}`)
    const parents = ((r.body as { status?: { parents?: Array<{ controllerName: string, conditions: unknown }> } }).status?.parents ?? [])
    return conditions(parents.find(p => p.controllerName === CONTROLLER_NAME)?.conditions)
  }

  async function peerName (options: tls.ConnectionOptions): Promise<string> {
    const s = tls.connect({ host: '127.0.0.1', port: 23333, ca: certs.ca, ...options })
    await once(s, 'secureConnect')
    const cn = String(s.getPeerCertificate().subject.CN ?? '')
    s.destroy()
    return cn
  }

  before(async () => {
    cp = await startControlPlane()
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-gateway-api-'))
    certs = makeCerts()
    const ip = async (args: string[]): Promise<void> => {
      const r = await run('ip', args)
      assert.equal(r.code, 0, `ip ${args.join(' ')}: ${r.stderr}`)
    }
    await ip(['netns', 'add', NS])
    await ip(['link', 'add', `${NS}h`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS])
    await ip(['addr', 'add', `${HOST_IP}/30`, 'dev', `${NS}h`])
    await ip(['link', 'set', `${NS}h`, 'up'])
    await ip(['-n', NS, 'addr', 'add', `${POD_IP}/30`, 'dev', 'eth0'])
    await ip(['-n', NS, 'link', 'set', 'eth0', 'up'])
    backend = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', backendScript, POD_IP], { stdio: ['ignore', 'pipe', 'inherit'] })
    await once(backend.stdout as NodeJS.ReadableStream, 'data')
    backend.stdout?.setEncoding('utf8').on('data', (d: string) => seen.push(...d.split('\n').filter(l => l.startsWith('seen '))))
    await cp.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kubeedge' } })
    for (const f of readdirSync(join(root, 'deploy/helm/edgemesh/crds'))) await apply(docs(readFileSync(join(root, 'deploy/helm/edgemesh/crds', f), 'utf8')))
    // The gateway chart's Gateway API CRDs (v1.6.3, standard channel), as `helm install` would create them.
    for (const f of readdirSync(join(root, 'deploy/helm/edgemesh-gateway/crds'))) await apply(docs(readFileSync(join(root, 'deploy/helm/edgemesh-gateway/crds', f), 'utf8')))
    await eventually('Istio CRDs served', async () => (await cp.request('GET', '/apis/networking.istio.io/v1/virtualservices')).status === 200, 20_000, 100)
    await eventually('Gateway API CRDs served', async () => (await cp.request('GET', '/apis/gateway.networking.k8s.io/v1/httproutes')).status === 200 && (await cp.request('GET', '/apis/gateway.networking.k8s.io/v1beta1/referencegrants')).status === 200, 20_000, 100)
    // The chart's own ServiceAccount, ClusterRole and binding: the gateway gets nothing else.
    const rendered = await run(join(toolsBin(), 'helm'), ['template', 'edgemesh-gateway', join(root, 'deploy/helm/edgemesh-gateway'), '--namespace', 'kubeedge', '--set', 'nodeName=cloud-1', '--set', `psk=${PSK}`])
    assert.equal(rendered.code, 0, rendered.stderr)
    await apply(docs(rendered.stdout).filter(o => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'GatewayClass'].includes(o.kind)))
    await writeFile(join(dir, 'token'), await cp.createServiceAccountToken('kubeedge', 'edgemesh-gateway'))
    await writeFile(join(dir, 'ca.crt'), cp.ca)
    await writeFile(join(dir, 'kubeconfig'), [
      'current-context: gw',
      `clusters: [{name: test, cluster: {server: '${cp.server}', certificate-authority: ca.crt}}]`,
      'contexts: [{name: gw, context: {cluster: test, user: gw}}]',
      'users: [{name: gw, user: {tokenFile: token}}]'
    ].join('\n'))

    // Upstream's example, verbatim; then what the Deployment's controller would make: its EndpointSlice.
    await apply(docs(readFileSync(join(fixtures, 'hostname-lb-random-gateway.yaml'), 'utf8')))
    await cp.apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'hostname-lb-svc-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'hostname-lb-svc' } },
      addressType: 'IPv4',
      ports: [{ name: 'http-0', port: 9376, protocol: 'TCP' }],
      endpoints: [{ addresses: [POD_IP], conditions: { ready: true }, nodeName: 'cloud-1' }]
    })

    const statusPort = await freePort()
    await writeFile(join(dir, 'edgemesh-gateway.yaml'), stringify({
      kubeAPIConfig: { kubeConfig: join(dir, 'kubeconfig') },
      statusPort,
      modules: { edgeGateway: { enable: true, includeIP: '127.0.0.1' }, edgeTunnel: { enable: false } }
    }))
    proc = spawn(process.execPath, [entry, 'gateway', '--config-file', join(dir, 'edgemesh-gateway.yaml')], { env: { PATH: process.env.PATH, NODE_NAME: 'cloud-1', NAMESPACE: 'kubeedge' }, stdio: ['ignore', 'ignore', 'pipe'] })
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => logs.push(...d.split('\n').filter(l => l !== '')))
    await eventually('gateway running', () => logs.some(l => l.includes('"msg":"running"')) || proc?.exitCode !== null, 20_000, 50)
    assert.equal(proc.exitCode, null, logs.join('\n'))
  })

  after(async () => {
    if (proc !== undefined && proc.exitCode === null) {
      proc.kill('SIGTERM')
      await once(proc, 'exit')
    }
    backend?.kill()
    // Deleting the namespace deletes the veth pair with it.
    await run('ip', ['netns', 'del', NS])
    certs?.close()
    await cp?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('hostname-lb-random-gateway.yaml: every path on port 23333 reaches the service', async () => {
    await eventually('route served', async () => (await get('/').catch(() => ({ status: 0, body: '' }))).status === 200, 10_000, 50)
    assert.equal((await get('/anything')).body, 'hostname-backend /anything')
  })

  test('hostname-lb-random-gateway-route.yaml replaces it: only hostname.org and /who', async () => {
    await apply(docs(readFileSync(join(fixtures, 'hostname-lb-random-gateway-route.yaml'), 'utf8')))
    await eventually('new route served', async () => (await get('/who', 'hostname.org')).status === 200 && (await get('/', 'other.org')).status === 404, 10_000, 50)
    assert.equal((await get('/who', 'hostname.org')).body, 'hostname-backend /who')
    assert.equal((await get('/elsewhere', 'hostname.org')).status, 404)
  })

  test('hostname-lb-random-gateway-tls.yaml: mutual TLS 1.2 from the Secret gw-secret, rotated through the API', async () => {
    await cp.apply(tlsSecret('gw-secret', certs.issue('gw-1', ['127.0.0.1']), certs.ca) as Obj)
    await apply(docs(readFileSync(join(fixtures, 'hostname-lb-random-gateway-tls.yaml'), 'utf8')))
    const client = certs.issue('client')
    await eventually('TLS served', async () => await peerName({ ...client }).catch(() => '') === 'gw-1', 10_000, 50)
    const refused = tls.connect({ host: '127.0.0.1', port: 23333, ca: certs.ca })
    refused.on('data', () => {})
    const [err] = await Promise.race([once(refused, 'error'), once(refused, 'close').then(() => [new Error('closed')])]) as [Error]
    assert.ok(err instanceof Error, 'a client without a certificate is refused')
    await cp.apply(tlsSecret('gw-secret', certs.issue('gw-2', ['127.0.0.1']), certs.ca) as Obj)
    await eventually('rotated certificate served', async () => await peerName({ ...client }).catch(() => '') === 'gw-2', 10_000, 50)
    assert.ok(!logs.some(l => /forbidden/i.test(l)), 'the chart\'s ClusterRole covers every informer')
  })

  test('the same routes as Gateway API resources: routing, rewrite, header edit, redirect, HTTPS from the Secret; status written back', async () => {
    await apply(docs(readFileSync(join(fixtures, 'gateway-api-hostname.yaml'), 'utf8')))
    await eventually('HTTPRoute served', async () => (await get('/who', 'hostname.org', 23380).catch(() => ({ status: 0 }))).status === 200, 10_000, 50)
    assert.equal((await get('/who', 'hostname.org', 23380)).body, 'hostname-backend /who')
    assert.equal((await get('/who', 'other.org', 23380)).status, 404, 'hostnames limit the route')
    assert.equal((await get('/whoever', 'hostname.org', 23380)).status, 404, 'a path prefix matches whole segments')
    const rewritten = await get('/v2/abc?x=1', 'hostname.org', 23380)
    assert.equal(rewritten.body, 'hostname-backend /abc?x=1')
    assert.equal(rewritten.headers['x-seen-env'], 'edge')
    const moved = await get('/old/page', 'hostname.org', 23380)
    assert.equal(moved.status, 301)
    assert.equal(moved.headers.location, 'http://new.org:23380/old/page')
    const body = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: 23443, servername: 'hostname.org', ca: certs.ca, checkServerIdentity: () => undefined })
      s.on('secureConnect', () => s.write('GET /who HTTP/1.1\r\nhost: hostname.org\r\nconnection: close\r\n\r\n'))
      let text = ''
      s.setEncoding('utf8').on('data', (d: string) => { text += d }).on('end', () => resolve(text)).on('error', reject)
    })
    assert.match(body, /^HTTP\/1\.1 200[^]*hostname-backend \/who$/)

    await eventually('status written', async () => {
      const g = (await cp.request('GET', '/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/edgemesh-gw')).body as { status?: { conditions?: unknown, listeners?: Array<{ name: string, attachedRoutes: number, conditions: unknown }> } }
      const c = conditions(g.status?.conditions)
      const http = g.status?.listeners?.find(l => l.name === 'http')
      return c.Accepted === 'True Accepted' && c.Programmed === 'True Programmed' && http?.attachedRoutes === 1 && conditions(http.conditions).Programmed === 'True Programmed' &&
        (await routeConditions('default', 'hostname-lb')).Accepted === 'True Accepted'
    }, 10_000, 100)
    assert.deepEqual(await routeConditions('default', 'hostname-lb'), { Accepted: 'True Accepted', ResolvedRefs: 'True ResolvedRefs' })
    const cls = (await cp.request('GET', '/apis/gateway.networking.k8s.io/v1/gatewayclasses/edgemesh')).body as { status?: { conditions?: unknown } }
    assert.equal(conditions(cls.status?.conditions).Accepted, 'True Accepted')
  })

  test('Gateway API status: an invalid route, a cross-namespace backend without, then with, a ReferenceGrant; RequestMirror copies requests', async () => {
    await cp.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' } })
    const route = (name: string, namespace: string, rule: Record<string, unknown>): Obj => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name, namespace },
      spec: { parentRefs: [{ name: 'edgemesh-gw', namespace: 'default', sectionName: 'http' }], hostnames: [`${name}.org`], rules: [rule] }
    })
    const backendRef = { name: 'hostname-lb-svc', namespace: 'default', port: 12345 }
    // The mirror's Service: another name for the same backend, which prints what reaches it.
    await apply([
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'mirror-svc', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 9376 }] } },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'mirror-svc-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'mirror-svc' } }, addressType: 'IPv4', ports: [{ name: 'http', port: 9376, protocol: 'TCP' }], endpoints: [{ addresses: [POD_IP], conditions: { ready: true }, nodeName: 'cloud-1' }] } as Obj
    ])
    await apply([
      route('cross', 'team-a', { backendRefs: [backendRef] }),
      route('ext', 'default', { filters: [{ type: 'ExtensionRef', extensionRef: { group: 'auth.example.com', kind: 'Policy', name: 'p' } }], backendRefs: [backendRef] }),
      route('mirror', 'default', { filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'mirror-svc', port: 80 } } }], backendRefs: [backendRef] })
    ])
    await eventually('conditions written', async () => (await routeConditions('team-a', 'cross')).ResolvedRefs === 'False RefNotPermitted' && (await routeConditions('default', 'ext')).Accepted === 'False UnsupportedValue', 10_000, 100)
    assert.equal((await get('/', 'cross.org', 23380)).status, 500, 'a backend the route may not use answers 500')
    assert.equal((await get('/', 'ext.org', 23380)).status, 404, 'a route that is not accepted is not served')
    const r = await cp.request('GET', '/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/ext')
    assert.match(JSON.stringify(r.body), /spec\.rules\[0\]\.filters\[0\]\.type \\"ExtensionRef\\" is not supported/)

    // The CORS filter through the API server (its CRD validates the fields) and a real client.
    await apply([route('cors', 'default', { filters: [{ type: 'CORS', cors: { allowOrigins: ['https://*.app.example'], allowMethods: ['*'], allowHeaders: ['*'], exposeHeaders: ['x-seen-env'], allowCredentials: true, maxAge: 600 } }], backendRefs: [backendRef] })])
    const preflight = async (origin: string): Promise<{ status: number, headers: http.IncomingHttpHeaders, body: string }> => await new Promise((resolve, reject) => {
      http.request({ host: '127.0.0.1', port: 23380, method: 'OPTIONS', path: '/x', headers: { host: 'cors.org', origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-token' }, agent: false }, res => {
        let body = ''
        res.setEncoding('utf8').on('data', (d: string) => { body += d }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      }).on('error', reject).end()
    })
    await eventually('CORS route served', async () => (await preflight('https://web.app.example')).headers['access-control-allow-origin'] === 'https://web.app.example', 10_000, 100)
    const allowed = await preflight('https://web.app.example')
    assert.deepEqual([allowed.status, allowed.headers['access-control-allow-methods'], allowed.headers['access-control-allow-headers'], allowed.headers['access-control-max-age'], allowed.headers['access-control-allow-credentials'], allowed.body],
      [200, 'PUT', 'x-token', '600', 'true', ''], 'answered by the gateway: `*` echoes what was asked, as credentials require')
    const refused = await preflight('https://evil.example')
    assert.deepEqual([refused.status, refused.headers['access-control-allow-origin'], refused.body], [200, undefined, ''], 'another origin: answered without CORS headers, not forwarded')
    await eventually('CORS route accepted', async () => JSON.stringify(await routeConditions('default', 'cors')) === JSON.stringify({ Accepted: 'True Accepted', ResolvedRefs: 'True ResolvedRefs' }), 10_000, 100)

    await eventually('mirror route served', async () => (await routeConditions('default', 'mirror')).ResolvedRefs === 'True ResolvedRefs' && (await get('/m?id=0', 'mirror.org', 23380)).status === 200, 10_000, 100)
    const answer = await get('/m?id=1', 'mirror.org', 23380)
    assert.equal(answer.body, 'hostname-backend /m?id=1')
    await eventually('the copy reached the mirror', () => seen.includes('seen mirror.org-shadow /m?id=1'), 5_000, 50)
    assert.ok(seen.includes('seen mirror.org /m?id=1'), 'and the request its route')

    await cp.apply({
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'ReferenceGrant',
      metadata: { name: 'team-a-routes', namespace: 'default' },
      spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'team-a' }], to: [{ group: '', kind: 'Service' }] }
    })
    await eventually('grant honoured', async () => (await routeConditions('team-a', 'cross')).ResolvedRefs === 'True ResolvedRefs' && (await get('/', 'cross.org', 23380)).status === 200, 10_000, 100)
    assert.equal((await get('/x', 'cross.org', 23380)).body, 'hostname-backend /x')
    assert.ok(!logs.some(l => /forbidden|status not written/i.test(l)), `the chart's ClusterRole covers the status writes:\n${logs.filter(l => /forbidden|status not written/i.test(l)).join('\n')}`)
  })
  test('a second gateway replica on another node: Gateway status names both replicas\' addresses and stays put; the stopped one drops out', async () => {
    const statusOf = async (): Promise<{ addresses: string[], resourceVersion: string }> => {
      const g = (await cp.request('GET', '/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/edgemesh-gw')).body as { metadata: { resourceVersion: string }, status?: { addresses?: Array<{ value: string }> } }
      return { addresses: (g.status?.addresses ?? []).map(a => a.value), resourceVersion: g.metadata.resourceVersion }
    }
    assert.deepEqual((await statusOf()).addresses, ['127.0.0.1'])
    // The same chart on node cloud-2: its address here is the host side of the backend's veth.
    const config = join(dir, 'edgemesh-gateway-2.yaml')
    await writeFile(config, stringify({
      kubeAPIConfig: { kubeConfig: join(dir, 'kubeconfig') },
      statusPort: await freePort(),
      modules: { edgeGateway: { enable: true, includeIP: HOST_IP }, edgeTunnel: { enable: false } }
    }))
    const second = spawn(process.execPath, [entry, 'gateway', '--config-file', config], { env: { PATH: process.env.PATH, NODE_NAME: 'cloud-2', NAMESPACE: 'kubeedge' }, stdio: ['ignore', 'ignore', 'pipe'] })
    const secondLogs: string[] = []
    second.stderr?.setEncoding('utf8').on('data', (d: string) => secondLogs.push(...d.split('\n').filter(l => l !== '')))
    try {
      await eventually('both replicas in status', async () => (await statusOf()).addresses.join(',') === `127.0.0.1,${HOST_IP}`, 20_000, 100)
      const settled = await statusOf()
      await new Promise(resolve => setTimeout(resolve, 3000))
      assert.deepEqual(await statusOf(), settled, 'no replica rewrites the other\'s status')
      const r = await new Promise<{ status: number, body: string }>((resolve, reject) => {
        http.get({ host: HOST_IP, port: 23380, path: '/who', headers: { host: 'hostname.org' }, agent: false }, res => {
          let body = ''
          res.setEncoding('utf8').on('data', (d: string) => { body += d }).on('end', () => resolve({ status: res.statusCode ?? 0, body }))
        }).on('error', reject)
      })
      assert.deepEqual(r, { status: 200, body: 'hostname-backend /who' }, 'the second replica serves the same routes')
      const lease = await cp.request('GET', '/apis/coordination.k8s.io/v1/namespaces/kubeedge/leases/edgemesh-gateway.cloud-2')
      assert.equal((lease.body as { metadata: { annotations: Record<string, string> } }).metadata.annotations['edgemesh.kubeedge.io/addresses'], HOST_IP)
    } finally {
      second.kill('SIGTERM')
      await once(second, 'exit')
    }
    await eventually('the stopped replica drops out', async () => (await statusOf()).addresses.join(',') === '127.0.0.1', 10_000, 100)
    assert.equal((await cp.request('GET', '/apis/coordination.k8s.io/v1/namespaces/kubeedge/leases/edgemesh-gateway.cloud-2')).status, 404, 'its Lease deleted')
    assert.ok(!secondLogs.some(l => /forbidden/i.test(l)), secondLogs.filter(l => /forbidden/i.test(l)).join('\n'))
  })
})
