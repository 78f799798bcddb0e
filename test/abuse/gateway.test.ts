// The gateway's listeners (HTTP/1.1, HTTP/2, TLS passthrough) under garbage, silent,
// oversized and departing clients, and HTTP/2 stream floods: each is closed by
// its deadline or cap, and the gateway keeps serving. The `edgemesh gateway` process, standalone file.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import http2 from 'node:http2'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { freePort } from '../helpers/net.ts'
import { assertClosed, flood, httpGet } from './agent.ts'

const entry = new URL('../../src/bin/edgemesh.ts', import.meta.url).pathname
// src/gateway/gateway.ts: headers within 10 s (checked every second), TLS hello within 10 s.
const DEADLINE_MS = 10_000
const MARGIN_MS = 2500

describe('gateway listeners under abuse', () => {
  let dir: string
  let proc: ChildProcess
  let backend: http.Server
  const ports = { http: 0, pass: 0, status: 0 }
  const logs: string[] = []

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'em-gw-abuse-'))
    backend = http.createServer((_req, res) => res.end('ok'))
    backend.listen(0, '127.0.0.1')
    await once(backend, 'listening')
    ports.http = await freePort()
    ports.pass = await freePort()
    ports.status = await freePort()
    const backendPort = (backend.address() as { port: number }).port
    const objects = [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', ports: [{ name: 'http', port: backendPort, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.1'] }] },
      { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'default' }, spec: { servers: [{ port: { number: ports.http, protocol: 'HTTP' }, hosts: ['*'] }, { port: { number: ports.pass, protocol: 'TLS' }, hosts: ['*'], tls: { mode: 'PASSTHROUGH' } }] } },
      { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'vs', namespace: 'default' }, spec: { gateways: ['gw'], hosts: ['*'], http: [{ route: [{ destination: { host: 'web' } }] }], tls: [{ match: [{ sniHosts: ['*'] }], route: [{ destination: { host: 'web' } }] }] } }
    ]
    await writeFile(join(dir, 'world.yaml'), objects.map(o => stringify(o)).join('---\n'))
    await writeFile(join(dir, 'gw.yaml'), stringify({ kubeAPIConfig: { standaloneFile: join(dir, 'world.yaml') }, statusPort: ports.status, modules: { edgeGateway: { enable: true, includeIP: '127.0.0.1' }, edgeTunnel: { enable: false } } }))
    proc = spawn(process.execPath, [entry, 'gateway', '--config-file', join(dir, 'gw.yaml')], { env: { PATH: process.env.PATH, NODE_NAME: 'abuse' }, stdio: ['ignore', 'ignore', 'pipe'] })
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => logs.push(d))
    for (let i = 0; i < 300 && !logs.join('').includes('"msg":"running"'); i++) await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal((await httpGet(ports.http, '/')).status, 200)
  })

  after(async () => {
    if (proc?.exitCode === null) {
      proc.kill('SIGTERM')
      await once(proc, 'exit')
    }
    backend?.close()
    await rm(dir, { recursive: true, force: true })
  })

  async function serving (): Promise<void> {
    assert.equal(proc.exitCode, null, logs.join('').slice(-3000))
    const r = await httpGet(ports.http, '/')
    assert.equal(r.status, 200)
    assert.equal(r.body, 'ok')
  }

  test('garbage and oversized headers are answered 400/431 and closed at once', async () => {
    const [garbage, big] = await Promise.all([
      flood(ports.http, { connections: 200, send: () => randomBytes(4096), holdMs: 3000 }),
      flood(ports.http, { connections: 20, send: () => Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nX-Big: '), Buffer.alloc(1024 * 1024, 0x61), Buffer.from('\r\n\r\n')]), holdMs: 3000 })
    ])
    assertClosed(garbage, 200, { maxMs: 3000 })
    assertClosed(big, 20, { maxMs: 3000 })
    assert.deepEqual(new Set(big.replies.map(b => b.toString().split('\r\n')[0])), new Set(['HTTP/1.1 431 Request Header Fields Too Large']))
    await serving()
  })

  test('silent and dripping clients are closed at their deadline, HTTP and TLS passthrough alike', async () => {
    const [silentHttp, drip, silentTls, notTls] = await Promise.all([
      flood(ports.http, { connections: 200, holdMs: DEADLINE_MS + MARGIN_MS }),
      flood(ports.http, { connections: 50, send: () => Buffer.from('GET / HTTP/1.1\r\nX-Drip: '), drip: 0x61, holdMs: DEADLINE_MS + MARGIN_MS }),
      flood(ports.pass, { connections: 200, holdMs: DEADLINE_MS + MARGIN_MS }),
      flood(ports.pass, { connections: 50, send: () => Buffer.from('GET / HTTP/1.1\r\n\r\n'), holdMs: 3000 })
    ])
    assertClosed(silentHttp, 200, { minMs: DEADLINE_MS - 1000, maxMs: DEADLINE_MS + MARGIN_MS })
    assertClosed(drip, 50, { minMs: DEADLINE_MS - 1000, maxMs: DEADLINE_MS + MARGIN_MS })
    assertClosed(silentTls, 200, { minMs: DEADLINE_MS - 1000, maxMs: DEADLINE_MS + MARGIN_MS })
    assertClosed(notTls, 50, { maxMs: 3000 })
    await serving()
  })

  test('HTTP/2: a preface cut short is closed at the deadline, one followed by garbage at once', async () => {
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
    const [half, garbage] = await Promise.all([
      flood(ports.http, { connections: 100, send: () => Buffer.from(preface.slice(0, 16)), holdMs: DEADLINE_MS + MARGIN_MS }),
      flood(ports.http, { connections: 100, send: () => Buffer.concat([Buffer.from(preface), randomBytes(4096)]), holdMs: 3000 })
    ])
    assertClosed(half, 100, { minMs: DEADLINE_MS - 1000, maxMs: DEADLINE_MS + MARGIN_MS })
    assertClosed(garbage, 100, { maxMs: 3000 })
    await serving()
  })

  test('HTTP/2: a client resetting streams as fast as it opens them (rapid reset) is sent away; a thousand streams on one session are all answered', async () => {
    const flooder = http2.connect(`http://127.0.0.1:${ports.http}`)
    flooder.on('error', () => {})
    const goaway = new Promise<number>(resolve => flooder.once('goaway', (code: number) => resolve(code)))
    await once(flooder, 'connect')
    let opened = 0
    for (; opened < 50_000 && !flooder.closed && !flooder.destroyed; opened++) {
      try {
        const r = flooder.request({ ':path': '/' })
        r.on('error', () => {})
        r.close(http2.constants.NGHTTP2_CANCEL)
      } catch {
        break
      }
      if (opened % 500 === 0) await new Promise(resolve => setImmediate(resolve))
    }
    // Node's HTTP/2 server ends such a session with GOAWAY long before 50,000 streams.
    const code = await Promise.race([goaway, new Promise<undefined>(resolve => setTimeout(() => resolve(undefined), 5000))])
    flooder.destroy()
    assert.notEqual(code, undefined, `no GOAWAY after ${opened} opened and reset streams`)
    await serving()

    const session = http2.connect(`http://127.0.0.1:${ports.http}`)
    session.on('error', () => {})
    try {
      const answers = await Promise.all(Array.from({ length: 1000 }, async () => await new Promise<string>((resolve, reject) => {
        const r = session.request({ ':path': '/' })
        let body = ''
        r.setEncoding('utf8').on('data', (d: string) => { body += d }).on('end', () => resolve(body)).on('error', reject)
      })))
      assert.equal(answers.filter(b => b === 'ok').length, 1000)
    } finally {
      session.destroy()
    }
  })
})
