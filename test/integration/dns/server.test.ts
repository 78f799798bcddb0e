// The DNS server on real sockets (127.0.0.1, random ports) with dig as the client.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { connect } from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import dnsPacket from 'dns-packet'
import { Registry } from 'prom-client'
import { DnsServer } from '../../../src/dns/index.ts'
import type { DnsServerInit } from '../../../src/dns/index.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { FakeServiceMap, endpoint, fixtureEntries, service } from '../../unit/dns/fixtures.ts'
import { startUpstream } from './upstream-fixture.ts'
import type { FixtureUpstream } from './upstream-fixture.ts'

const HAVE_DIG = await new Promise<boolean>(resolve => execFile('dig', ['-v'], err => resolve(err === null)))

interface Dig { status: string, flags: string[], answers: string[], stdout: string }

async function dig (port: number, args: string[]): Promise<Dig> {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '+time=3', '+tries=1', '+nocookie', ...args], { timeout: 15_000 }, (err, out) => {
      if (err !== null && out === '') reject(err)
      else resolve(out)
    })
  })
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'none'
  const flags = (/;; flags: ([^;]*);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/)
  const section = /;; ANSWER SECTION:\n([\s\S]*?)(\n\n|$)/.exec(stdout)?.[1] ?? ''
  const answers = section.split('\n').filter(Boolean).map(l => l.split(/\s+/).filter((_, i) => i !== 1).join(' '))
  return { status, flags, answers, stdout }
}

/** One UDP exchange with raw bytes; undefined when nothing comes back within `ms`. */
async function rawUdp (port: number, msg: Buffer, ms = 500): Promise<Buffer | undefined> {
  const s = createSocket('udp4')
  try {
    return await new Promise<Buffer | undefined>(resolve => {
      const t = setTimeout(() => resolve(undefined), ms)
      s.on('message', m => { clearTimeout(t); resolve(m) })
      s.send(msg, port, '127.0.0.1')
    })
  } finally {
    s.close()
  }
}

describe('DnsServer on 127.0.0.1', { skip: HAVE_DIG ? false : 'dig not installed (apt-get install dnsutils)' }, () => {
  let dir: string
  let upstream: FixtureUpstream
  let server: DnsServer
  let registry: Registry
  let port: number
  const map = new FakeServiceMap([
    ...fixtureEntries(),
    service('default', 'big', { headless: true, ports: [{ name: 'http', protocol: 'TCP', port: 80 }] },
      Array.from({ length: 40 }, (_, i) => endpoint(`10.250.${i}.1`, { hostname: `p-${i}`, ports: [{ name: 'http', protocol: 'TCP', port: 80 }] })))
  ])

  async function startServer (init: Partial<DnsServerInit> = {}, reg = new Registry()): Promise<DnsServer> {
    const s = new DnsServer({ logger: noopLogger, metrics: reg, serviceMap: map }, {
      listenAddress: '127.0.0.1', listenPort: 0, resolvConfPath: join(dir, 'resolv.conf'), upstreamPort: upstream.port, upstreamTimeoutMs: 400, ...init
    })
    await s.start()
    return s
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-dns-'))
    upstream = await startUpstream('127.0.0.1', { 'www.example.test': '192.0.2.10', 'example.test': '192.0.2.1' })
    await writeFile(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\n')
    registry = new Registry()
    server = await startServer({}, registry)
    port = server.address().port
  })

  after(async () => {
    await server?.stop()
    await upstream?.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('A, AAAA, SRV, PTR, TXT for the cluster zone; NXDOMAIN with SOA', async () => {
    assert.deepEqual((await dig(port, ['hostname-svc.default.svc.cluster.local'])).answers, ['hostname-svc.default.svc.cluster.local. IN A 10.96.0.10'])
    assert.deepEqual((await dig(port, ['AAAA', 'dual.default.svc.cluster.local'])).answers, ['dual.default.svc.cluster.local. IN AAAA fd00:10:96::11'])
    assert.deepEqual((await dig(port, ['SRV', '_http._tcp.hostname-svc.default.svc.cluster.local'])).answers,
      ['_http._tcp.hostname-svc.default.svc.cluster.local. IN SRV 0 100 12345 hostname-svc.default.svc.cluster.local.'])
    assert.deepEqual((await dig(port, ['-x', '10.96.0.10'])).answers, ['10.0.96.10.in-addr.arpa. IN PTR hostname-svc.default.svc.cluster.local.'])
    assert.deepEqual((await dig(port, ['TXT', 'dns-version.cluster.local'])).answers, ['dns-version.cluster.local. IN TXT "1.1.0"'])
    const nx = await dig(port, ['nope.default.svc.cluster.local'])
    assert.equal(nx.status, 'NXDOMAIN')
    assert.match(nx.stdout, /AUTHORITY SECTION:\ncluster\.local\.\s+30\s+IN\s+SOA\s+ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\./)
    const nodata = await dig(port, ['MX', 'hostname-svc.default.svc.cluster.local'])
    assert.deepEqual([nodata.status, nodata.answers], ['NOERROR', []])
    assert.ok(nodata.flags.includes('aa'))
  })

  test('the same answers over TCP', async () => {
    const r = await dig(port, ['+tcp', 'SRV', '_http._tcp.headless.default.svc.cluster.local'])
    assert.equal(r.answers.length, 2)
  })

  test('truncation: a large answer has TC over UDP and dig falls back to TCP by itself', async () => {
    const udp = await dig(port, ['+ignore', '+noedns', 'SRV', 'big.default.svc.cluster.local'])
    assert.ok(udp.flags.includes('tc'), udp.stdout)
    const full = await dig(port, ['+noedns', 'SRV', 'big.default.svc.cluster.local'])
    assert.equal(full.answers.length, 40)
    assert.match(full.stdout, /Truncated, retrying in TCP mode/)
  })

  test('forwarded names: answered by the upstream, then from the cache; NXDOMAIN passed through', async () => {
    upstream.queries.length = 0
    const a = await dig(port, ['www.example.test'])
    assert.deepEqual(a.answers, ['www.example.test. IN A 192.0.2.10'])
    assert.ok(!a.flags.includes('aa') && a.flags.includes('ra'))
    const b = await dig(port, ['WWW.Example.Test'])
    assert.deepEqual(b.answers.map(a => a.toLowerCase()), ['www.example.test. in a 192.0.2.10'])
    assert.match(b.stdout, /QUESTION SECTION:\n;WWW\.Example\.Test\./, 'the question keeps the client\'s case')
    assert.equal(upstream.queries.length, 1, 'second answer from the cache')
    assert.equal((await dig(port, ['missing.example.test'])).status, 'NXDOMAIN')
    assert.match(await registry.metrics(), /edgemesh_dns_cache_hits_total [1-9]/)
  })

  test('a truncated upstream reply is retried over TCP', async () => {
    upstream.truncateUdp = true
    upstream.queries.length = 0
    try {
      const r = await dig(port, ['example.test'])
      assert.deepEqual(r.answers, ['example.test. IN A 192.0.2.1'])
      assert.deepEqual(upstream.queries.map(q => q.tcp), [false, true])
    } finally {
      upstream.truncateUdp = false
    }
  })

  test('failover: a dead first upstream times out, the second answers', async () => {
    const resolv = join(dir, 'two.conf')
    // 127.0.0.2 has nothing listening on the upstream port: no answer, then the next server.
    await writeFile(resolv, 'nameserver 127.0.0.2\nnameserver 127.0.0.1\n')
    const s = await startServer({ resolvConfPath: resolv, upstreamTimeoutMs: 200 })
    try {
      const r = await dig(s.address().port, ['www.example.test'])
      assert.deepEqual(r.answers, ['www.example.test. IN A 192.0.2.10'])
    } finally {
      await s.stop()
    }
  })

  test('never forwards to itself: a resolv.conf naming only this server gives SERVFAIL, not a loop', async () => {
    const free = createSocket('udp4')
    await new Promise<void>(resolve => free.bind(0, '127.0.0.1', () => resolve()))
    const p = free.address().port
    await new Promise<void>(resolve => free.close(() => resolve()))
    const reg = new Registry()
    // resolv.conf says 127.0.0.1, asked on this server's own port: that is this server.
    const s = await startServer({ listenPort: p, upstreamPort: p }, reg)
    try {
      assert.equal((await dig(p, ['anything.example.test'])).status, 'SERVFAIL')
      assert.match(await reg.metrics(), /edgemesh_dns_upstream_servers 0/)
      assert.equal((await dig(p, ['hostname-svc.default.svc.cluster.local'])).status, 'NOERROR', 'the cluster zone still answers')
    } finally {
      await s.stop()
    }
  })

  test('cacheDNS mode: everything, the cluster zone too, goes over TCP to the detected cluster DNS', async () => {
    const cached = new FakeServiceMap([
      ...fixtureEntries().filter(e => e.service.name !== 'kube-dns'),
      service('kube-system', 'kube-dns', {
        clusterIPs: ['127.0.0.1'],
        labels: { 'k8s-app': 'kube-dns' },
        ports: [{ name: 'dns', protocol: 'UDP', port: upstream.port }, { name: 'dns-tcp', protocol: 'TCP', port: upstream.port }]
      })
    ])
    const s = new DnsServer({ logger: noopLogger, metrics: new Registry(), serviceMap: cached }, {
      listenAddress: '127.0.0.1', listenPort: 0, cacheDNS: { enable: true, autoDetect: true, upstreamServers: [], cacheTTL: 5 }
    })
    await s.start()
    upstream.queries.length = 0
    try {
      const r = await dig(s.address().port, ['hostname-svc.default.svc.cluster.local'])
      assert.equal(r.status, 'NXDOMAIN', 'the cluster DNS (our fixture) does not know it: its answer, not ours')
      assert.deepEqual((await dig(s.address().port, ['www.example.test'])).answers, ['www.example.test. IN A 192.0.2.10'])
      assert.deepEqual(upstream.queries.map(q => [q.name, q.tcp]), [['hostname-svc.default.svc.cluster.local', true], ['www.example.test', true]])
    } finally {
      await s.stop()
    }
  })

  test('malformed packets: FORMERR when the header parses, silence otherwise; the server keeps serving', async () => {
    const q = dnsPacket.encode({ id: 0xbeef, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'hostname-svc.default.svc.cluster.local' }] })
    const reply = await rawUdp(port, q.subarray(0, 25))
    assert.ok(reply !== undefined)
    const d = dnsPacket.decode(reply) as unknown as { id: number, rcode: string }
    assert.deepEqual([d.id, d.rcode], [0xbeef, 'FORMERR'])
    assert.equal(await rawUdp(port, Buffer.from([1, 2, 3]), 200), undefined)
    assert.equal((await dig(port, ['hostname-svc.default.svc.cluster.local'])).status, 'NOERROR')
  })

  test('a service map change is visible on the next query', async () => {
    assert.equal((await dig(port, ['later.default.svc.cluster.local'])).status, 'NXDOMAIN')
    map.set([...fixtureEntries(), service('default', 'later', { clusterIPs: ['10.96.0.99'] })])
    assert.deepEqual((await dig(port, ['later.default.svc.cluster.local'])).answers, ['later.default.svc.cluster.local. IN A 10.96.0.99'])
  })

  test('restart: stop releases every socket and timer; start binds the same port again; two servers can share it', async () => {
    // dig's pipes come and go; count what a server could own.
    const handles = (): string[] => process.getActiveResourcesInfo().filter(r => !['TTYWrap', 'PipeWrap', 'ProcessWrap'].includes(r)).sort()
    const baseline = handles()
    const s = await startServer()
    const p = s.address().port
    // A second server joins the SO_REUSEPORT group (how a new agent takes over without a gap).
    const twin = await startServer({ listenPort: p })
    assert.equal(twin.address().port, p)
    await s.stop()
    assert.equal((await dig(p, ['hostname-svc.default.svc.cluster.local'])).status, 'NOERROR', 'the twin answers')
    await twin.stop()
    await twin.stop()
    assert.equal(twin.isReady(), false)
    await s.start()
    assert.equal((await dig(s.address().port, ['+tcp', 'hostname-svc.default.svc.cluster.local'])).status, 'NOERROR')
    await s.stop()
    assert.deepEqual(handles(), baseline, 'no handles left behind')
  })

  test('a port that cannot be bound fails start() with EM_ERR_DNS_BIND', async () => {
    const s = new DnsServer({ logger: noopLogger, metrics: new Registry(), serviceMap: map }, { listenAddress: '192.0.2.200', listenPort: 0, resolvConfPath: join(dir, 'resolv.conf') })
    await assert.rejects(s.start(), (err: Error & { code: string }) => {
      assert.equal(err.code, 'EM_ERR_DNS_BIND')
      assert.match(err.message, /192\.0\.2\.200.*EADDRNOTAVAIL.*bridge device/)
      return true
    })
  })

  test('TCP under abuse: idle connections at the cap make room for a new query, a dripping client is cut', async () => {
    const reg = new Registry()
    const s = await startServer({ maxTcpConnections: 10, tcpReadTimeoutMs: 300 }, reg)
    const p = s.address().port
    const closedBy = async (reason: string): Promise<number> =>
      (await reg.getSingleMetric('edgemesh_dns_tcp_closed_total')?.get())?.values.find(v => v.labels.reason === reason)?.value ?? 0
    const idle = await Promise.all(Array.from({ length: 10 }, async () => {
      const c = connect({ host: '127.0.0.1', port: p })
      c.on('error', () => {})
      await new Promise(resolve => c.once('connect', resolve))
      return c
    }))
    try {
      // The eleventh client is answered at once: the oldest idle connection gives way.
      const t0 = performance.now()
      assert.equal((await dig(p, ['+tcp', '+tries=1', '+time=2', 'hostname-svc.default.svc.cluster.local'])).status, 'NOERROR')
      assert.ok(performance.now() - t0 < 2000)
      assert.ok(await closedBy('evicted') >= 1)
      // A length prefix for 32 bytes, then one byte every 100 ms: cut at the read deadline, not kept alive.
      const drip = connect({ host: '127.0.0.1', port: p })
      drip.on('error', () => {})
      await new Promise(resolve => drip.once('connect', resolve))
      drip.write(Buffer.from([0x00, 0x20]))
      const timer = setInterval(() => drip.write(Buffer.from([0x41])), 100)
      const t1 = performance.now()
      await new Promise(resolve => drip.once('close', resolve))
      clearInterval(timer)
      assert.ok(performance.now() - t1 < 1500, 'cut within the read deadline')
      assert.equal(await closedBy('read_deadline'), 1)
    } finally {
      idle.forEach(c => c.destroy())
      await s.stop()
    }
  })
})
