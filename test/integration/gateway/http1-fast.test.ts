// The gateway's HTTP/1.1 fast path as clients and backends meet it: a real
// `edgemesh gateway` process on a standalone file, undici's pipelining client,
// Node's HTTP client, curl, raw sockets, and a scripted backend that answers
// with the framings real servers use (chunked with trailers, to the close,
// 103 before the answer, and a broken one).
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { Client } from 'undici'
import { freePort } from '../../helpers/net.ts'
import { startGateway, stopGateway } from '../../helpers/gateway-process.ts'

type Obj = Record<string, unknown>

function service (name: string, backendPort: number): Obj[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } }, addressType: 'IPv4', ports: [{ name: 'http', port: backendPort, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.1'] }] }
  ]
}

/** What the scripted backend answers, by path; `/once` answers once per connection and then drops it at the next request. */
const SCRIPTS: Record<string, Array<string | number>> = {
  '/raw/chunked': ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\nTrailer: X-Trailer\r\n\r\n5\r\nhello\r\n', 20, '6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n'],
  '/raw/close': ['HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ', 20, 'the close', 'END'],
  '/raw/hints': ['HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n', 10, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  '/raw/clash': ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'],
  '/raw/head-split': ['HTTP/1.1 200 OK\r\nContent-', 10, 'Length: 10\r\nX-Split: yes\r\n\r\n01234', 10, '56789']
}

function scriptedBackend (): net.Server {
  return net.createServer(socket => {
    let buf = ''
    let served = 0
    socket.on('error', () => {})
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1')
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, end).split(' ')[1] ?? ''
        buf = buf.slice(end + 4)
        served++
        if (path === '/raw/once') {
          if (served > 1) { socket.destroy(); return }
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce')
          continue
        }
        const steps = SCRIPTS[path] ?? ['HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n']
        const play = async (): Promise<void> => {
          for (const step of steps) {
            if (typeof step === 'number') await new Promise(resolve => setTimeout(resolve, step))
            else if (step === 'END') socket.end()
            else socket.write(step)
          }
        }
        play().catch(() => socket.destroy())
      }
    })
  })
}

describe('edgemesh gateway: the HTTP/1.1 fast path', { timeout: 60_000 }, () => {
  let dir: string
  let proc: ChildProcess | undefined
  const logs: string[] = []
  const servers: Array<{ close: () => void }> = []
  const ports = {} as Record<'gw' | 'status' | 'raw' | 'echo' | 'upload', number>

  const listen = async (s: net.Server): Promise<number> => {
    s.listen(0, '127.0.0.1')
    await once(s, 'listening')
    servers.push({ close: () => { (s as http.Server).closeAllConnections?.(); s.close() } })
    return (s.address() as net.AddressInfo).port
  }

  async function fastPathCounts (): Promise<{ forwarded: number, handedOver: number }> {
    const text = await (await fetch(`http://127.0.0.1:${ports.status}/metrics`)).text()
    const count = (outcome: string): number => Number(new RegExp(`edgemesh_gateway_http1_fast_path_total\\{outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0)
    return { forwarded: count('forwarded'), handedOver: count('handed_over') }
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'em-gw-fast-'))
    ports.gw = await freePort()
    ports.status = await freePort()
    ports.raw = await listen(scriptedBackend())
    // Echoes what it got: method, path, the body's length and hash, and the headers.
    const echo = (): http.Server => http.createServer((req, res) => {
      const hash = createHash('sha256')
      let length = 0
      req.on('data', (d: Buffer) => { hash.update(d); length += d.length })
      req.on('end', () => {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ method: req.method, url: req.url, length, sha256: hash.digest('hex'), headers: req.headers }))
      })
    })
    ports.echo = await listen(echo())
    // A backend of its own: the upload test's request is the first to it, so its connection is dialed while the body arrives.
    ports.upload = await listen(echo())
    const world = join(dir, 'world.yaml')
    const objects: Obj[] = [
      ...service('raw', ports.raw), ...service('echo', ports.echo), ...service('upload', ports.upload),
      { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'default' }, spec: { servers: [{ hosts: ['*'], port: { number: ports.gw, protocol: 'HTTP' } }] } },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'routes', namespace: 'default' },
        spec: {
          gateways: ['gw'],
          hosts: ['*'],
          http: [
            { match: [{ uri: { prefix: '/raw/' } }], route: [{ destination: { host: 'raw' } }], headers: { response: { set: { 'x-gw': 'fast' } } } },
            { match: [{ uri: { prefix: '/old' } }], redirect: { uri: '/new' } },
            { match: [{ uri: { prefix: '/upload' } }], route: [{ destination: { host: 'upload' } }], headers: { request: { set: { 'x-route': 'upload' } } } },
            { match: [{ uri: { prefix: '/echo' } }], route: [{ destination: { host: 'echo' } }], headers: { request: { set: { 'x-route': 'echo' } } } }
          ]
        }
      }
    ]
    await writeFile(world, objects.map(o => stringify(o)).join('---\n'))
    proc = await startGateway(dir, world, ports.status, logs)
  })

  after(async () => {
    await stopGateway(proc)
    for (const s of servers) s.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('pipelined requests on one connection are answered in order, each routed on its own', async () => {
    const client = new Client(`http://127.0.0.1:${ports.gw}`, { pipelining: 4 })
    try {
      const paths = ['/echo/1', '/raw/chunked', '/echo/2', '/raw/head-split']
      const answers = await Promise.all(paths.map(async path => {
        const r = await client.request({ method: 'GET', path })
        return { status: r.statusCode, body: await r.body.text() }
      }))
      assert.deepEqual(answers.map(a => a.status), [200, 200, 200, 200])
      assert.equal((JSON.parse(answers[0]?.body ?? '') as { url: string }).url, '/echo/1')
      assert.equal(answers[1]?.body, 'hello world')
      assert.equal((JSON.parse(answers[2]?.body ?? '') as { url: string }).url, '/echo/2')
      assert.equal(answers[3]?.body, '0123456789')
    } finally {
      await client.close()
    }
  })

  test('framings pass through: chunked with trailers, a body ended by the close, 103 before the answer; clashing lengths are 502', async () => {
    const get = async (path: string): Promise<{ status: number, body: string, headers: http.IncomingHttpHeaders, trailers: NodeJS.Dict<string> }> => await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: ports.gw, path, agent: false }, res => {
        let body = ''
        res.setEncoding('latin1').on('data', (d: string) => { body += d }).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, trailers: res.trailers }))
      }).on('error', reject)
    })
    const chunked = await get('/raw/chunked')
    assert.deepEqual([chunked.status, chunked.body, chunked.headers['transfer-encoding'], chunked.headers['x-kind'], chunked.headers['x-gw'], chunked.trailers['x-trailer']], [200, 'hello world', 'chunked', 'chunked', 'fast', 't'])
    const closed = await get('/raw/close')
    assert.deepEqual([closed.status, closed.body, closed.headers.connection], [200, 'until the close', 'close'])
    const hints = await get('/raw/hints')
    assert.deepEqual([hints.status, hints.body, hints.headers['content-length']], [200, 'ok', '2'])
    const clash = await get('/raw/clash')
    assert.equal(clash.status, 502)
    assert.match(clash.body, /invalid response/)
  })

  test('request bodies go through whole, streamed; the route\'s header edits and X-Forwarded-For apply', async () => {
    const body = randomBytes(4 * 1024 * 1024)
    const upload = async (path: string, pieces: boolean): Promise<{ status: number, json: { method: string, length: number, sha256: string, headers: Record<string, string> } }> => await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: ports.gw, path, method: 'PUT', headers: { 'content-length': body.length, 'x-forwarded-for': '203.0.113.9' }, agent: false }, res => {
        let text = ''
        res.setEncoding('utf8').on('data', (d: string) => { text += d }).on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }))
      })
      req.on('error', reject)
      if (!pieces) { req.end(body); return }
      // In pieces, as a slow uploader sends it.
      let at = 0
      const next = (): void => {
        if (at >= body.length) { req.end(); return }
        req.write(body.subarray(at, at + 256 * 1024))
        at += 256 * 1024
        setTimeout(next, 2)
      }
      next()
    })
    const sha256 = createHash('sha256').update(body).digest('hex')
    // At once, to a backend not yet connected: the body arrives while the connection is dialed.
    const first = await upload('/upload/at-once', false)
    assert.deepEqual([first.status, first.json.length, first.json.sha256, first.json.headers['x-route']], [200, body.length, sha256, 'upload'])
    const answer = await upload('/echo/upload', true)
    assert.equal(answer.status, 200)
    assert.deepEqual([answer.json.method, answer.json.length, answer.json.sha256], ['PUT', body.length, sha256])
    assert.equal(answer.json.headers['x-route'], 'echo')
    assert.equal(answer.json.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1')
    assert.equal(answer.json.headers['x-forwarded-proto'], 'http')
  })

  test('a request the fast path does not serve hands the connection to the full handler at that request', async () => {
    const before = await fastPathCounts()
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const one = async (path: string): Promise<{ status: number, location?: string | undefined, reused: boolean }> => await new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: ports.gw, path, agent }, res => {
        res.resume().on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, reused: req.reusedSocket }))
      })
      req.on('error', reject)
    })
    try {
      const answers = [await one('/echo/a'), await one('/old/x'), await one('/echo/b')]
      assert.deepEqual(answers.map(a => a.status), [200, 301, 200])
      assert.equal(answers[1]?.location, 'http://127.0.0.1:' + String(ports.gw) + '/new/x')
      assert.deepEqual(answers.map(a => a.reused), [false, true, true])
    } finally {
      agent.destroy()
    }
    const after = await fastPathCounts()
    assert.deepEqual({ forwarded: after.forwarded - before.forwarded, handedOver: after.handedOver - before.handedOver }, { forwarded: 1, handedOver: 1 })
  })

  test('a kept-alive backend connection dropped by the backend is replaced without the client noticing', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      for (let i = 0; i < 3; i++) {
        const r = await new Promise<{ status: number, body: string }>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port: ports.gw, path: '/raw/once', agent }, res => {
            let body = ''
            res.setEncoding('utf8').on('data', (d: string) => { body += d }).on('end', () => resolve({ status: res.statusCode ?? 0, body }))
          }).on('error', reject)
        })
        assert.deepEqual(r, { status: 200, body: 'once' }, `request ${i + 1}`)
      }
    } finally {
      agent.destroy()
    }
  })

  test('heads that could be read two ways, and HTTP/1.0, are left to Node\'s parser: smuggling is refused, HTTP/1.0 served', async () => {
    const raw = async (text: string): Promise<string> => {
      const s = net.connect(ports.gw, '127.0.0.1')
      s.write(text)
      let got = ''
      s.setEncoding('latin1').on('data', (d: string) => { got += d })
      await once(s, 'close')
      return got
    }
    const smuggle = await raw('POST /echo/x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo/admin HTTP/1.1\r\nHost: a\r\n\r\n')
    assert.match(smuggle, /^HTTP\/1\.1 400 /)
    assert.doesNotMatch(smuggle, /\/echo\/admin/)
    const old = await raw('GET /echo/ten HTTP/1.0\r\nHost: a\r\n\r\n')
    assert.match(old, /^HTTP\/1\.1 200 /)
    assert.match(old, /"url":"\/echo\/ten"/)
  })
})
