import { test, describe, before, after, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JsonObjectSplitter, KubeClient, resourcePath, TokenBucket } from '../../../src/kube/client.ts'
import type { KubeConnection } from '../../../src/kube/connection.ts'
import {
  KubeForbiddenError, KubeNotFoundError, KubeRequestError, KubeResourceExpiredError, KubeResourceNotFoundError,
  KubeTimeoutError, KubeUnauthorizedError, KubeUnreachableError
} from '../../../src/kube/errors.ts'
import { RESOURCES } from '../../../src/kube/types.ts'
import type { Service, WatchEvent } from '../../../src/kube/types.ts'
import { FakeApiServer } from '../../helpers/fake-apiserver.ts'

function conn (server: string, over: Partial<KubeConnection> = {}): KubeConnection {
  return {
    mode: 'EdgeMode',
    server,
    description: `metaServer ${server}`,
    tls: { insecureSkipTLSVerify: false },
    qps: 1000,
    burst: 1000,
    requestedContentType: 'application/json',
    ...over
  }
}

function svc (name: string, namespace = 'default'): { metadata: { name: string, namespace: string }, spec: object } {
  return { metadata: { name, namespace }, spec: { ports: [{ port: 80 }] } }
}

async function drain (it: AsyncIterable<unknown>): Promise<void> {
  const i = it[Symbol.asyncIterator]()
  while ((await i.next()).done !== true) { /* discard */ }
}

async function closedPort (): Promise<number> {
  const s = net.createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}

test('resourcePath: core and group, namespaced and cluster-wide', () => {
  assert.equal(resourcePath(RESOURCES.services), '/api/v1/services')
  assert.equal(resourcePath(RESOURCES.services, 'kube-system'), '/api/v1/namespaces/kube-system/services')
  assert.equal(resourcePath(RESOURCES.endpointSlices), '/apis/discovery.k8s.io/v1/endpointslices')
  assert.equal(resourcePath(RESOURCES.nodes, 'ignored'), '/api/v1/nodes')
  assert.equal(resourcePath(RESOURCES.destinationRules, 'a'), '/apis/networking.istio.io/v1alpha3/namespaces/a/destinationrules')
})

test('JsonObjectSplitter: objects split anywhere, concatenated, with tricky strings', () => {
  const objs = [
    { type: 'ADDED', object: { s: 'a } { " \\ ] [', n: 1 } },
    { type: 'MODIFIED', object: { s: 'ünïcødé ☃ 😀', arr: [{ a: [] }, {}] } },
    { type: 'DELETED', object: { s: '' } }
  ]
  const text = JSON.stringify(objs[0]) + '\n' + JSON.stringify(objs[1]) + JSON.stringify(objs[2]) + '\n'
  for (const step of [1, 2, 3, 7, text.length]) {
    const sp = new JsonObjectSplitter()
    const out: unknown[] = []
    for (let i = 0; i < text.length; i += step) for (const t of sp.push(text.slice(i, i + step))) out.push(JSON.parse(t))
    assert.deepEqual(out, objs, `step ${step}`)
  }
  const small = new JsonObjectSplitter(10)
  assert.throws(() => small.push('{"aaaaaaaaaaaaaaaaaaaa'), /larger than 10 bytes/)
})

test('TokenBucket: burst is free, then requests are spaced at 1/qps', () => {
  let now = 0
  const b = new TokenBucket(10, 3, () => now)
  assert.deepEqual([b.reserve(), b.reserve(), b.reserve()], [0, 0, 0])
  assert.equal(Math.round(b.reserve()), 100)
  assert.equal(Math.round(b.reserve()), 200)
  b.cancel()
  now = 1000
  assert.equal(b.reserve(), 0)
  assert.equal(new TokenBucket(0, 0).reserve(), 0)
})

test('TokenBucket.take waits for its slot', async () => {
  const b = new TokenBucket(50, 1)
  await b.take()
  const t0 = performance.now()
  await b.take()
  assert.ok(performance.now() - t0 >= 15)
})

describe('against a fake API server', () => {
  let fake: FakeApiServer
  let client: KubeClient
  let dir = ''
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgemesh-kubeclient-'))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))
  beforeEach(async () => {
    fake = await new FakeApiServer().listen()
    client = new KubeClient(conn(fake.url, { token: 'abc' }), { requestTimeoutMs: 2000 })
  })
  afterEach(async () => {
    client.close()
    await fake.close()
  })

  test('list pages through limit/continue and passes selectors; JSON and the token are sent', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) fake.put('/api/v1/namespaces/ns1/services', svc(n, 'ns1'))
    const list = await client.list<Service>(RESOURCES.services, { namespace: 'ns1', limit: 2, labelSelector: 'x=y', fieldSelector: 'metadata.name!=z' })
    assert.deepEqual(list.items.map(s => s.metadata.name), ['a', 'b', 'c', 'd', 'e'])
    assert.equal(list.metadata.resourceVersion, String(fake.rv))
    assert.equal(fake.requests.length, 3)
    assert.deepEqual(fake.requests.map(r => r.query.get('continue')), [null, '2', '4'])
    for (const r of fake.requests) {
      assert.equal(r.path, '/api/v1/namespaces/ns1/services')
      assert.equal(r.query.get('limit'), '2')
      assert.equal(r.query.get('labelSelector'), 'x=y')
      assert.equal(r.query.get('fieldSelector'), 'metadata.name!=z')
      assert.equal(r.headers.accept, 'application/json')
      assert.equal(r.headers.authorization, 'Bearer abc')
    }
  })

  test('403 names the verb, the resource, its group and scope', async () => {
    fake.forbidden.add('list /apis/discovery.k8s.io/v1/endpointslices')
    await assert.rejects(client.list(RESOURCES.endpointSlices), (err: unknown) => {
      assert.ok(err instanceof KubeForbiddenError)
      assert.equal(err.code, 'EM_ERR_KUBE_FORBIDDEN')
      assert.equal(err.verb, 'list')
      assert.equal(err.resource, 'endpointslices')
      assert.equal(err.user, 'system:serviceaccount:kubeedge:edgemesh-agent')
      assert.equal(err.message, `forbidden: cannot list resource "endpointslices" in API group "discovery.k8s.io" (cluster scope) — grant it in the ClusterRole (user "system:serviceaccount:kubeedge:edgemesh-agent", server metaServer ${fake.url})`)
      return true
    })
    fake.forbidden.add('watch /api/v1/namespaces/a/services')
    await assert.rejects(client.watch(RESOURCES.services, { namespace: 'a' }),
      /^KubeForbiddenError: forbidden: cannot watch resource "services" in API group "" \(namespace "a"\)/)
  })

  test('404 on a collection is KubeResourceNotFoundError, on a path KubeNotFoundError', async () => {
    fake.notFound.add('/apis/networking.istio.io/')
    await assert.rejects(client.list(RESOURCES.virtualServices), (err: unknown) =>
      err instanceof KubeResourceNotFoundError && err.resource === 'virtualservices' && err.group === 'networking.istio.io' &&
      err.message.includes('404 page not found'))
    await assert.rejects(client.watch(RESOURCES.virtualServices), KubeResourceNotFoundError)
    await assert.rejects(client.get('/apis/networking.istio.io/v1alpha3/namespaces/a/virtualservices/x'), KubeNotFoundError)
  })

  test('401, 410 and 503 with Retry-After map to typed errors', async () => {
    let status = 401
    fake.override = (_req, res) => {
      res.writeHead(status, { 'Content-Type': 'application/json', 'Retry-After': '2' })
      res.end(JSON.stringify({ kind: 'Status', message: `status ${status}`, code: status }))
      return true
    }
    await assert.rejects(client.list(RESOURCES.services), KubeUnauthorizedError)
    status = 410
    await assert.rejects(client.list(RESOURCES.services), KubeResourceExpiredError)
    status = 503
    await assert.rejects(client.get('/version'), (err: unknown) =>
      err instanceof KubeRequestError && err.status === 503 && err.retryAfterMs === 2000 && err.message.includes('status 503'))
  })

  test('a non-JSON 200 body is a KubeRequestError', async () => {
    fake.override = (_req, res) => { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end('<html>'); return true }
    await assert.rejects(client.get('/version'), /response is not JSON \(content-type text\/html\)/)
  })

  test('watch: replays from the resourceVersion, parses split events, ends when the server closes', async () => {
    const path = '/api/v1/services'
    fake.put(path, svc('old'))
    const from = String(fake.rv)
    fake.put(path, svc('a'))
    const w = await client.watch<Service>(RESOURCES.services, { resourceVersion: from, timeoutSeconds: 30 })
    const got: Array<WatchEvent<Service>> = []
    const done = (async () => { for await (const ev of w) got.push(ev) })()
    const q = fake.requests.at(-1)?.query
    assert.equal(q?.get('watch'), 'true')
    assert.equal(q?.get('allowWatchBookmarks'), 'true')
    assert.equal(q?.get('timeoutSeconds'), '30')
    assert.equal(q?.get('resourceVersion'), from)
    fake.put(path, { ...svc('a'), metadata: { name: 'a', namespace: 'default', labels: { x: 'y' } } })
    fake.sendRaw(path, JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '999' } } }) + '\n', true)
    fake.remove(path, 'default/a')
    while (got.length < 4) await new Promise(resolve => setImmediate(resolve))
    fake.closeWatches()
    await done
    assert.deepEqual(got.map(e => [e.type, e.object.metadata.name ?? e.object.metadata.resourceVersion]),
      [['ADDED', 'a'], ['MODIFIED', 'a'], ['BOOKMARK', '999'], ['DELETED', 'a']])
  })

  test('watch: an ERROR event with code 410 throws KubeResourceExpiredError from the iteration', async () => {
    fake.expiredBelow = 1000
    const w = await client.watch(RESOURCES.services, { resourceVersion: '5' })
    await assert.rejects((async () => { await drain(w) })(), (err: unknown) =>
      err instanceof KubeResourceExpiredError && err.message.includes('too old resource version: 5 (1000)'))
  })

  test('watch: close() and the abort signal release the connection', async () => {
    const w = await client.watch(RESOURCES.services)
    while (fake.watcherCount() === 0) await new Promise(resolve => setImmediate(resolve))
    w.close()
    while (fake.watcherCount() > 0) await new Promise(resolve => setImmediate(resolve))

    const ac = new AbortController()
    const w2 = await client.watch(RESOURCES.services, { signal: ac.signal })
    const it = (async () => { await drain(w2) })()
    ac.abort(new Error('stopping'))
    await assert.rejects(it, /stopping/)
    await assert.rejects(client.list(RESOURCES.services, { signal: ac.signal }), /stopping/)
  })

  test('deadlines: a silent server gives KubeTimeoutError for gets and watches', async () => {
    fake.override = () => true // never answers
    const quick = new KubeClient(conn(fake.url), { requestTimeoutMs: 100, watchGraceMs: 100 })
    try {
      await assert.rejects(quick.get('/version'), (err: unknown) => err instanceof KubeTimeoutError && err.timeoutMs === 100)
      fake.override = (req, res, url) => {
        if (url.searchParams.get('watch') !== 'true') return false
        res.writeHead(200, { 'Content-Type': 'application/json' })
        res.write('') // headers out, then silence
        return true
      }
      const w = await quick.watch(RESOURCES.services, { timeoutSeconds: 0 })
      await assert.rejects((async () => { await drain(w) })(), KubeTimeoutError)
    } finally {
      quick.close()
    }
  })

  test('token files are re-read after tokenRefreshMs (rotated projected tokens)', async () => {
    const tokenFile = join(dir, 'token')
    writeFileSync(tokenFile, 'one\n')
    const c = new KubeClient(conn(fake.url, { tokenFile, token: 'static' }), { tokenRefreshMs: 0 })
    try {
      await c.get('/api/v1/services')
      writeFileSync(tokenFile, 'two')
      await c.get('/api/v1/services')
      assert.deepEqual(fake.requests.map(r => r.headers.authorization), ['Bearer one', 'Bearer two'])
    } finally {
      c.close()
    }
  })

  test('basic auth from a kubeconfig user', async () => {
    const c = new KubeClient(conn(fake.url, { basicAuth: { username: 'u', password: 'p' } }))
    try {
      await c.get('/api/v1/services')
      assert.equal(fake.requests[0]?.headers.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`)
    } finally {
      c.close()
    }
  })
})

test('an unreachable server is KubeUnreachableError naming it', async () => {
  const port = await closedPort()
  const c = new KubeClient(conn(`http://127.0.0.1:${port}`))
  try {
    await assert.rejects(c.list(RESOURCES.services), (err: unknown) =>
      err instanceof KubeUnreachableError && err.code === 'EM_ERR_KUBE_UNREACHABLE' &&
      err.message.startsWith(`cannot reach the Kubernetes API server metaServer http://127.0.0.1:${port}: connect ECONNREFUSED`))
    await assert.rejects(c.watch(RESOURCES.services), KubeUnreachableError)
  } finally {
    c.close()
  }
})
