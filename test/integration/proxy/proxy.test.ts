// The userspace proxy on real sockets (127.0.0.x): clients connect to the
// listeners directly, as the DNAT rule would make them do.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { createSocket } from 'node:dgram'
import type { Socket as UdpSocket } from 'node:dgram'
import { Registry } from 'prom-client'
import { EdgeProxy, NoInterceptor } from '../../../src/proxy/index.ts'
import { DirectDialer } from '../../../src/mesh/index.ts'
import { parseDestinationRule } from '../../../src/loadbalancer/index.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { FakeServiceMap, endpoint, service } from '../../unit/dns/fixtures.ts'
import { once } from 'node:events'
import { eventually } from '../../helpers/control-plane.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'
import { scrape } from '../../helpers/scrape.ts'
import { overflowListenQueue } from '../../helpers/net.ts'
import type { ServiceEntry } from '../../../src/servicemap/types.ts'

/** A backend that answers every request line with its own name, and handles half-close like a real server. */
async function backend (host: string, name: string): Promise<{ server: Server, port: number }> {
  const server = createServer({ allowHalfOpen: true }, s => {
    let buf = ''
    s.on('data', d => {
      buf += d.toString()
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        s.write(`${name} ${line}\n`)
      }
    })
    // Answers after the client's FIN: lost without half-close support.
    s.on('end', () => s.end(`${name} bye\n`))
    s.on('error', () => {})
  })
  await new Promise<void>(resolve => server.listen(0, host, resolve))
  return { server, port: (server.address() as { port: number }).port }
}

async function request (port: number, lines: string[], opts: { host?: string, end?: boolean } = {}): Promise<string> {
  return await new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    let out = ''
    s.on('data', d => { out += d.toString() })
    s.on('error', reject)
    s.on('end', () => { resolve(out); s.end() })
    s.on('connect', () => {
      for (const l of lines) s.write(l + '\n')
      if (opts.end !== false) s.end()
    })
  })
}

async function httpGet (port: number, headers: Record<string, string>): Promise<string> {
  const head = ['GET / HTTP/1.1', 'Host: web', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n')
  const out = await request(port, [head])
  return out.split(' ')[0] as string
}

/** default/web (10.96.0.10:80, port name http) with endpoints at `ip:port`. */
function web (...eps: Array<[string, number]>): ServiceEntry {
  return service('default', 'web', { clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', protocol: 'TCP', port: 80 }] },
    eps.map(([ip, port]) => endpoint(ip, { nodeName: 'node-a', ports: [{ name: 'http', protocol: 'TCP', port }] })))
}

describe('EdgeProxy userspace path on loopback', () => {
  let a: { server: Server, port: number }
  let b: { server: Server, port: number }
  let udp: UdpSocket
  let udpPort: number
  let map: FakeServiceMap
  let proxy: EdgeProxy
  let listener: number

  before(async () => {
    a = await backend('127.0.0.1', 'a')
    b = await backend('127.0.0.2', 'b').catch(() => ({ server: createServer(), port: 0 }))
    udp = createSocket('udp4')
    udp.on('message', (m, r) => udp.send(m, r.port, r.address))
    await new Promise<void>(resolve => udp.bind(0, '127.0.0.1', resolve))
    udpPort = udp.address().port
    map = new FakeServiceMap([
      web(['127.0.0.1', a.port]),
      service('default', 'echo-udp', { clusterIPs: ['10.96.0.11'], ports: [{ name: '', protocol: 'UDP', port: 5353 }] }, [
        endpoint('127.0.0.1', { nodeName: 'node-a', ports: [{ name: '', protocol: 'UDP', port: udpPort }] })
      ]),
      service('default', 'empty', { clusterIPs: ['10.96.0.12'], ports: [{ name: '', protocol: 'TCP', port: 80 }] }, [])
    ])
    proxy = new EdgeProxy({
      logger: noopLogger,
      metrics: new Registry(),
      serviceMap: map,
      interceptor: new NoInterceptor(),
      dialer: new DirectDialer({ connectTimeoutMs: 1000 }),
      isDirect: () => true
    }, { listenIp: '127.0.0.1', serviceFilterMode: 'FilterIfLabelExists', kernelPath: false, udpIdleTimeoutMs: 2000, peekTimeoutMs: 500 })
    await proxy.start()
    listener = proxy.listenerPort('10.96.0.10', 'tcp', 80) as number
  })

  after(async () => {
    await proxy.stop()
    a.server.close()
    b.server.close()
    udp.close()
  })

  test('a TCP request reaches the endpoint, and the reply sent after the client FIN arrives', async () => {
    assert.ok(listener > 0)
    assert.equal(await request(listener, ['hello']), 'a hello\na bye\n')
  })

  test('UDP through the listener keeps datagram boundaries', async () => {
    const port = proxy.listenerPort('10.96.0.11', 'udp', 5353) as number
    const client = createSocket('udp4')
    const got: Buffer[] = []
    const sizes = [1, 1200, 7, 4000]
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`got ${got.length} of ${sizes.length} datagrams`)), 3000)
      client.on('message', m => { got.push(m); if (got.length === sizes.length) { clearTimeout(t); resolve() } })
      for (const n of sizes) client.send(Buffer.alloc(n, n % 251), port, '127.0.0.1')
    })
    client.close()
    assert.deepEqual(got.map(m => m.length).sort((x, y) => x - y), [...sizes].sort((x, y) => x - y))
    for (const m of got) assert.ok(m.every(byte => byte === m.length % 251))
  })

  test('a service without endpoints resets the client at once', async () => {
    const port = proxy.listenerPort('10.96.0.12', 'tcp', 80) as number
    const started = performance.now()
    const err = await request(port, ['x']).then(() => undefined, (e: NodeJS.ErrnoException) => e)
    assert.equal(err?.code, 'ECONNRESET')
    assert.ok(performance.now() - started < 500)
  })

  test('round robin alternates; a dead endpoint is skipped for the next one', async (t) => {
    if (b.port === 0) { t.skip('127.0.0.2 not available'); return }
    map.set([web(['127.0.0.1', a.port], ['127.0.0.2', b.port])])
    await new Promise(resolve => setTimeout(resolve, 50))
    const port = proxy.listenerPort('10.96.0.10', 'tcp', 80) as number
    assert.equal(port, listener, 'the listener survives an endpoint change')
    const names = []
    for (let i = 0; i < 6; i++) names.push((await request(port, ['x'])).split(' ')[0])
    assert.deepEqual(new Set(names), new Set(['a', 'b']))
    assert.equal(names.filter(n => n === 'a').length, 3)
    // A third endpoint that refuses: every request still succeeds.
    const dead = createServer()
    await new Promise<void>(resolve => dead.listen(0, '127.0.0.3', resolve))
    const deadPort = (dead.address() as { port: number }).port
    dead.close()
    map.set([web(['127.0.0.1', a.port], ['127.0.0.3', deadPort])])
    await new Promise(resolve => setTimeout(resolve, 50))
    for (let i = 0; i < 4; i++) assert.equal((await request(port, ['x'])).split(' ')[0], 'a')
  })

  test('consistent hash by header: a DestinationRule switch applies to new connections, an open one keeps working', async (t) => {
    if (b.port === 0) { t.skip('127.0.0.2 not available'); return }
    map.set([web(['127.0.0.1', a.port], ['127.0.0.2', b.port])])
    await new Promise(resolve => setTimeout(resolve, 50))
    const port = proxy.listenerPort('10.96.0.10', 'tcp', 80) as number
    // An open connection from before the switch.
    const open: Socket = connect({ host: '127.0.0.1', port })
    await new Promise(resolve => open.once('connect', resolve))
    await proxy.setRule(parseDestinationRule({
      apiVersion: 'networking.istio.io/v1alpha3',
      kind: 'DestinationRule',
      metadata: { namespace: 'default', name: 'web' },
      spec: { host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } }
    }))
    const byUser = new Map<string, Set<string>>()
    // 16 users: endpoint ports differ per run and so do ring positions; with 6 users all landed on one endpoint in 1 run of 32.
    for (const user of Array.from({ length: 16 }, (_, i) => `user-${i}`)) {
      const seen = new Set<string>()
      for (let i = 0; i < 4; i++) seen.add(await httpGet(port, { 'x-user': user }))
      byUser.set(user, seen)
    }
    for (const [user, seen] of byUser) assert.equal(seen.size, 1, `${user} always lands on one endpoint`)
    const all = new Set([...byUser.values()].flatMap(s => [...s]))
    assert.equal(all.size, 2, 'users spread over both endpoints')
    // The connection opened before the switch still works.
    const reply = await new Promise<string>(resolve => { open.once('data', d => resolve(d.toString())); open.write('still\n') })
    assert.match(reply, /^[ab] still\n$/)
    open.destroy()
    await proxy.deleteRule('default', 'web')
  })

  test('kernel path is chosen when every endpoint is local and the policy allows it', async () => {
    const kernel = new EdgeProxy({
      logger: noopLogger,
      metrics: new Registry(),
      serviceMap: map,
      interceptor: new NoInterceptor(),
      dialer: new DirectDialer(),
      isDirect: nodeName => nodeName === 'node-a'
    }, { listenIp: '127.0.0.1', serviceFilterMode: 'FilterIfLabelExists' })
    map.set([
      service('default', 'local', { clusterIPs: ['10.96.1.1'], ports: [{ name: '', protocol: 'TCP', port: 80 }] }, [endpoint('10.0.0.1', { nodeName: 'node-a', ports: [{ name: '', protocol: 'TCP', port: 8080 }] })]),
      service('default', 'remote', { clusterIPs: ['10.96.1.2'], ports: [{ name: '', protocol: 'TCP', port: 80 }] }, [endpoint('10.0.0.2', { nodeName: 'node-b', ports: [{ name: '', protocol: 'TCP', port: 8080 }] })]),
      service('default', 'sticky', { clusterIPs: ['10.96.1.3'], sessionAffinity: 'ClientIP', affinityTimeoutSeconds: 600, ports: [{ name: '', protocol: 'TCP', port: 80 }] }, [endpoint('10.0.0.3', { nodeName: 'node-a', ports: [{ name: '', protocol: 'TCP', port: 8080 }] })]),
      service('default', 'headless', { clusterIPs: [], headless: true, ports: [{ name: '', protocol: 'TCP', port: 80 }] }, [endpoint('10.0.0.4', { nodeName: 'node-a', ports: [{ name: '', protocol: 'TCP', port: 8080 }] })]),
      service('default', 'skipped', { clusterIPs: ['10.96.1.5'], labels: { 'service.edgemesh.kubeedge.io/service-proxy-name': 'other' }, ports: [{ name: '', protocol: 'TCP', port: 80 }] }, [])
    ])
    await kernel.start()
    try {
      const rules = kernel.rules()
      assert.deepEqual([...rules.keys()].sort(), ['10.96.1.1/tcp/80', '10.96.1.2/tcp/80', '10.96.1.3/tcp/80'])
      assert.deepEqual(rules.get('10.96.1.1/tcp/80')?.target, { kind: 'kernel', endpoints: [{ ip: '10.0.0.1', port: 8080 }], pick: 'round-robin', affinitySeconds: 0 })
      assert.equal(rules.get('10.96.1.2/tcp/80')?.target.kind, 'userspace')
      const sticky = rules.get('10.96.1.3/tcp/80')?.target
      assert.ok(sticky?.kind === 'kernel' && sticky.affinitySeconds === 600)
    } finally {
      await kernel.stop()
    }
  })
})

describe('EdgeProxy under overload', () => {
  /** A dialer whose dials hang until aborted, as through a CPU-starved tunnel. */
  class StuckDialer {
    started = 0
    aborted = 0
    async dialTcp (_target: unknown, signal?: AbortSignal): Promise<never> {
      this.started++
      return await new Promise((_resolve, reject) => signal?.addEventListener('abort', () => { this.aborted++; reject(new Error('aborted')) }))
    }

    async dialUdp (): Promise<never> { throw new Error('no UDP here') }
  }

  async function withProxy (use: (port: number, dialer: StuckDialer, registry: Registry, lines: LogLine[]) => Promise<void>): Promise<void> {
    const dialer = new StuckDialer()
    const registry = new Registry()
    const lines: LogLine[] = []
    const proxy = new EdgeProxy({
      logger: recordingLogger(lines),
      metrics: registry,
      serviceMap: new FakeServiceMap([web(['127.0.0.1', 9])]),
      interceptor: new NoInterceptor(),
      dialer,
      isDirect: () => false
    }, { listenIp: '127.0.0.1', serviceFilterMode: 'FilterIfLabelExists', kernelPath: false, maxPendingConnections: 4, listenOverflowPollMs: 100 })
    await proxy.start()
    try {
      await use(proxy.listenerPort('10.96.0.10', 'tcp', 80) as number, dialer, registry, lines)
    } finally {
      await proxy.stop()
    }
  }

  test('a client that leaves without a byte has its dial abandoned', async () => {
    await withProxy(async (port, dialer, registry) => {
      const client = connect(port, '127.0.0.1')
      const reset = once(client, 'error')
      await once(client, 'connect')
      client.end()
      await eventually('the dial is aborted', () => dialer.aborted === 1, 2000, 10)
      assert.equal((await scrape(registry)).get('edgemesh_proxy_refused_total{service="default/web",reason="client_left"}'), 1)
      assert.equal(((await reset)[0] as NodeJS.ErrnoException).code, 'ECONNRESET')
    })
  })

  test('a client that resets while its dial is pending is counted and warned about too', async () => {
    await withProxy(async (port, dialer, registry, lines) => {
      const client = connect(port, '127.0.0.1')
      client.on('error', () => {})
      await once(client, 'connect')
      await eventually('the dial started', () => dialer.started === 1, 2000, 10)
      client.resetAndDestroy()
      await eventually('the dial is aborted', () => dialer.aborted === 1, 2000, 10)
      await eventually('counted', async () => (await scrape(registry)).get('edgemesh_proxy_refused_total{service="default/web",reason="client_left"}') === 1, 2000, 10)
      assert.ok(lines.some(l => l.level === 'warn' && l.msg === 'proxied connections failed'), 'warned')
    })
  })

  test('connections the kernel dropped for a full listen queue are counted and warned about', async () => {
    await withProxy(async (_port, _dialer, registry, lines) => {
      await overflowListenQueue()
      await eventually('counted', async () => ((await scrape(registry)).get('edgemesh_proxy_listen_overflows_total') ?? 0) > 0, 3000, 20)
      await eventually('warned', () => lines.some(l => l.level === 'warn' && l.msg === 'proxied connections failed' && JSON.stringify(l.fields).includes('listen queues overflowed')), 3000, 20)
    })
  })

  test('beyond maxPendingConnections new clients are reset at once and a warn line counts them', async () => {
    await withProxy(async (port, dialer, registry, lines) => {
      const waiting = await Promise.all(Array.from({ length: 4 }, async () => { const c = connect(port, '127.0.0.1'); c.on('error', () => {}); await once(c, 'connect'); return c }))
      await eventually('four dials pending', () => dialer.started === 4, 2000, 10)
      const started = performance.now()
      const shed = await request(port, ['x']).then(() => undefined, (e: NodeJS.ErrnoException) => e)
      assert.equal(shed?.code, 'ECONNRESET')
      assert.ok(performance.now() - started < 500, 'reset at once, not queued')
      assert.equal(dialer.started, 4, 'no dial for a shed client')
      assert.equal((await scrape(registry)).get('edgemesh_proxy_refused_total{service="default/web",reason="overload"}'), 1)
      assert.ok(lines.some(l => l.level === 'warn' && l.msg.startsWith('proxied connections failed')), JSON.stringify(lines))
      for (const c of waiting) c.destroy()
      await eventually('room again', () => dialer.aborted === 4, 2000, 10)
      const next = connect(port, '127.0.0.1')
      await once(next, 'connect')
      await eventually('a new client is dialed for', () => dialer.started === 5, 2000, 10)
      next.destroy()
    })
  })
})
