// HTTP/2 and gRPC through `edgemesh gateway` as a user runs it: a real process,
// routes from a standalone file (an Istio GRPC server, then a Gateway API
// GRPCRoute), a real gRPC backend and client (@grpc/grpc-js), Node's HTTP/2
// client and curl with nghttp2, in cleartext (h2c) and over TLS with ALPN.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import http from 'node:http'
import http2 from 'node:http2'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { freePort } from '../../helpers/net.ts'
import { startGateway, until, stopGateway } from '../../helpers/gateway-process.ts'
import { makeCerts, tlsSecret } from '../../helpers/certs.ts'
import type { TestCerts } from '../../helpers/certs.ts'
import { CONTROLLER_NAME } from '../../../src/gateway/index.ts'

type Obj = Record<string, unknown>

const PROTO = `
syntax = "proto3";
package echo;
service Echo {
  rpc Say (Msg) returns (Msg);
  rpc Count (Msg) returns (stream Msg);
}
message Msg { string text = 1; }
`

function service (name: string, backendPort: number, portName: string): Obj[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIP: '10.96.0.1', ports: [{ name: portName, port: 80, protocol: 'TCP' }] } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } }, addressType: 'IPv4', ports: [{ name: portName, port: backendPort, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.1'] }] }
  ]
}

async function run (cmd: string, args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise(resolve => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, stdout, stderr }))
  })
}

type EchoClient = grpc.Client & {
  Say: ((msg: { text: string }, cb: (err: grpc.ServiceError | null, res?: { text: string }) => void) => void) &
  ((msg: { text: string }, metadata: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: { text: string }) => void) => void)
  Count: (msg: { text: string }) => grpc.ClientReadableStream<{ text: string }>
}

describe('edgemesh gateway: HTTP/2 and gRPC, cleartext and TLS', () => {
  let dir: string
  let world: string
  let proc: ChildProcess | undefined
  let certs: TestCerts
  const logs: string[] = []
  const closers: Array<() => void> = []
  const ports = {} as Record<'h2c' | 'tls' | 'api' | 'status' | 'grpc' | 'web', number>
  let Echo: grpc.ServiceClientConstructor

  async function writeWorld (objects: Obj[]): Promise<void> {
    await writeFile(`${world}.tmp`, objects.map(o => stringify(o)).join('---\n'))
    await rename(`${world}.tmp`, world)
  }

  function client (port: number, creds = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}): EchoClient {
    const c = new Echo(`127.0.0.1:${port}`, creds, options) as unknown as EchoClient
    closers.push(() => c.close())
    return c
  }

  async function say (c: EchoClient, text: string): Promise<{ text: string }> {
    return await new Promise((resolve, reject) => c.Say({ text }, (err, res) => err !== null ? reject(err) : resolve(res as { text: string })))
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'em-gw-h2-'))
    world = join(dir, 'world.yaml')
    certs = makeCerts()
    await writeFile(join(dir, 'echo.proto'), PROTO)
    await writeFile(join(dir, 'ca.pem'), certs.ca)
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(join(dir, 'echo.proto'))) as unknown as { echo: { Echo: grpc.ServiceClientConstructor } }
    Echo = pkg.echo.Echo
    for (const name of ['h2c', 'tls', 'api', 'status'] as const) ports[name] = await freePort()

    const server = new grpc.Server()
    server.addService(Echo.service, {
      Say: (call: grpc.ServerUnaryCall<{ text: string }, { text: string }>, cb: grpc.sendUnaryData<{ text: string }>) => {
        if (call.request.text === 'missing') { cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' }); return }
        cb(null, { text: `echo ${call.request.text} via ${String(call.metadata.get('x-via')[0] ?? 'nothing')}` })
      },
      Count: (call: grpc.ServerWritableStream<{ text: string }, { text: string }>) => {
        for (let i = 1; i <= 3; i++) call.write({ text: `${call.request.text} ${i}` })
        call.end()
      }
    })
    ports.grpc = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => err !== null ? reject(err) : resolve(port)))
    closers.push(() => server.forceShutdown())
    const web = http.createServer((req, res) => res.end(`web ${req.url ?? ''} over HTTP/${req.httpVersion} host ${req.headers.host ?? ''}`))
    web.listen(0, '127.0.0.1')
    await once(web, 'listening')
    closers.push(() => { web.closeAllConnections(); web.close() })
    ports.web = (web.address() as { port: number }).port

    const pair = certs.issue('grpc.example.com', ['grpc.example.com', '127.0.0.1'])
    await writeWorld([
      // `grpc` as the port name: Istio's convention for a backend that speaks HTTP/2 in cleartext.
      ...service('echo', ports.grpc, 'grpc'),
      ...service('web', ports.web, 'http'),
      tlsSecret('grpc-cert', pair, certs.ca) as Obj,
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'Gateway',
        metadata: { name: 'gw', namespace: 'default' },
        spec: {
          servers: [
            { hosts: ['*'], port: { number: ports.h2c, name: 'grpc', protocol: 'GRPC' } },
            { hosts: ['*'], port: { number: ports.tls, name: 'https', protocol: 'HTTPS' }, tls: { mode: 'SIMPLE', credentialName: 'grpc-cert' } }
          ]
        }
      },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'routes', namespace: 'default' },
        spec: {
          gateways: ['gw'],
          hosts: ['*'],
          http: [
            { match: [{ uri: { prefix: '/echo.Echo/' }, headers: { 'x-fault': { exact: 'abort' } } }], route: [{ destination: { host: 'echo' } }], fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } } },
            { match: [{ uri: { prefix: '/echo.Echo/' } }], route: [{ destination: { host: 'echo' } }], headers: { request: { set: { 'x-via': 'istio' } } } },
            { match: [{ uri: { prefix: '/moved' } }], redirect: { uri: '/new' } },
            { route: [{ destination: { host: 'web' } }] }
          ]
        }
      },
      // The same backend as a Gateway API GRPCRoute on a port of its own.
      { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'edgemesh' }, spec: { controllerName: CONTROLLER_NAME } },
      { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'api', namespace: 'default' }, spec: { gatewayClassName: 'edgemesh', listeners: [{ name: 'grpc', port: ports.api, protocol: 'HTTP' }] } },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'GRPCRoute',
        metadata: { name: 'echo', namespace: 'default' },
        spec: {
          parentRefs: [{ name: 'api' }],
          rules: [
            { matches: [{ method: { service: 'echo.Echo', method: 'Say' }, headers: [{ name: 'x-tenant', value: 'edge' }] }], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-via', value: 'grpcroute-edge' }] } }], backendRefs: [{ name: 'echo', port: 80 }] },
            { matches: [{ method: { service: 'echo.Echo' } }], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-via', value: 'grpcroute' }] } }], backendRefs: [{ name: 'echo', port: 80 }] }
          ]
        }
      }
    ])
    proc = await startGateway(dir, world, ports.status, logs)
  })

  after(async () => {
    for (const close of closers) close()
    await stopGateway(proc)
    certs?.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('gRPC in cleartext (h2c prior knowledge): unary, server streaming, and an error status from the backend\'s trailers', async () => {
    const c = client(ports.h2c)
    assert.deepEqual(await until('gRPC served', async () => await say(c, 'hello')), { text: 'echo hello via istio' })
    const got: string[] = []
    for await (const m of c.Count({ text: 'tick' }) as AsyncIterable<{ text: string }>) got.push(m.text)
    assert.deepEqual(got, ['tick 1', 'tick 2', 'tick 3'])
    await assert.rejects(say(c, 'missing'), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND && err.details === 'no such thing')
    // 20 calls at once share the client's one connection as HTTP/2 streams.
    const many = await Promise.all(Array.from({ length: 20 }, async (_, i) => await say(c, `n${i}`)))
    assert.deepEqual(many.map(m => m.text), Array.from({ length: 20 }, (_, i) => `echo n${i} via istio`))
  })

  test('Istio fault abort with a gRPC status: the client gets it, the backend never sees the call', async () => {
    const c = client(ports.h2c)
    await until('gRPC served', async () => await say(c, 'warm'))
    const fault = new grpc.Metadata()
    fault.set('x-fault', 'abort')
    await assert.rejects(new Promise((resolve, reject) => c.Say({ text: 'hello' }, fault, (err, res) => err !== null ? reject(err) : resolve(res))),
      (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE && err.details === 'fault filter abort')
  })

  test('gRPC over TLS: ALPN h2 on an HTTPS server from the Secret', async () => {
    const c = client(ports.tls, grpc.credentials.createSsl(Buffer.from(certs.ca)), { 'grpc.ssl_target_name_override': 'grpc.example.com' })
    assert.deepEqual(await until('gRPC over TLS served', async () => await say(c, 'secure')), { text: 'echo secure via istio' })
  })

  test('HTTP/2 clients reach an HTTP/1.1 backend: Node\'s h2c client, curl with h2c prior knowledge and curl over TLS', async () => {
    const session = http2.connect(`http://127.0.0.1:${ports.h2c}`)
    closers.push(() => session.destroy())
    const body = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ':path': '/page?x=1', ':authority': 'shop.example' })
      let text = ''
      req.setEncoding('utf8').on('data', (d: string) => { text += d }).on('end', () => resolve(text)).on('error', reject)
    })
    assert.equal(body, 'web /page?x=1 over HTTP/1.1 host shop.example')
    const h2c = await run('curl', ['-s', '--http2-prior-knowledge', '-w', ' %{http_version}', `http://127.0.0.1:${ports.h2c}/plain`])
    assert.equal(h2c.stdout, 'web /plain over HTTP/1.1 host 127.0.0.1:' + String(ports.h2c) + ' 2')
    const overTls = await run('curl', ['-s', '--http2', '--cacert', join(dir, 'ca.pem'), '--resolve', `grpc.example.com:${ports.tls}:127.0.0.1`, '-w', ' %{http_version}', `https://grpc.example.com:${ports.tls}/tls`])
    assert.equal(overTls.stdout, `web /tls over HTTP/1.1 host grpc.example.com:${ports.tls} 2`, overTls.stderr)
    const h1 = await run('curl', ['-s', '--http1.1', '-w', ' %{http_version}', `http://127.0.0.1:${ports.h2c}/old`])
    assert.equal(h1.stdout, `web /old over HTTP/1.1 host 127.0.0.1:${ports.h2c} 1.1`, 'HTTP/1.1 keeps working on the same port')
  })

  test('curl --http2 on http:// (Upgrade: h2c) is answered over HTTP/1.1 and routed per request: a redirect route answers, the next request on the connection is routed too', async () => {
    const r = await run('curl', ['-s', '--http2', '-w', '%{http_code} %{http_version} %{redirect_url}\n', `http://127.0.0.1:${ports.h2c}/moved`, `http://127.0.0.1:${ports.h2c}/after`])
    assert.equal(r.stdout, `301 1.1 http://127.0.0.1:${ports.h2c}/new\nweb /after over HTTP/1.1 host 127.0.0.1:${ports.h2c}200 1.1 \n`, r.stderr)
  })

  test('a Gateway API GRPCRoute: method and header matches, header filter', async () => {
    const c = client(ports.api)
    assert.deepEqual(await until('GRPCRoute served', async () => await say(c, 'route')), { text: 'echo route via grpcroute' })
    const tenant = new grpc.Metadata()
    tenant.set('x-tenant', 'edge')
    const viaTenant = await new Promise<{ text: string }>((resolve, reject) => c.Say({ text: 'route' }, tenant, (err, res) => err !== null ? reject(err) : resolve(res as { text: string })))
    assert.deepEqual(viaTenant, { text: 'echo route via grpcroute-edge' })
  })
})
