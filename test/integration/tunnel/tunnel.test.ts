// Three tunnels on loopback: a relay and two nodes that reach each other
// only through it (they know no address of each other). Real libp2p, real
// sockets, the real PSK derivation.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { createSocket } from 'node:dgram'
import type { Server, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { once } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { createMesh } from '../../../src/app/mesh.ts'
import type { Mesh } from '../../../src/app/mesh.ts'
import type { RelayNode } from '../../../src/tunnel/tunnel.ts'
import type { MeshInit } from '../../../src/app/mesh.ts'
import { RelayWatcher } from '../../../src/tunnel/relay-watcher.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'
import { eventually } from '../../helpers/control-plane.ts'

async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise(resolve => s.close(resolve))
  return port
}

async function roundTrip (conn: Duplex, payload: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    let out = ''
    conn.on('data', (d: Buffer) => { out += d.toString() })
    conn.on('end', () => resolve(out))
    conn.on('error', reject)
    conn.end(payload)
  })
}

describe('EdgeTunnel on loopback: relay + two nodes', () => {
  let dir: string
  let echo: Server
  let echoPort: number
  const tunnels: Mesh[] = []
  let relayPort: number
  const lines: LogLine[] = []
  const registries = new Map<string, Registry>()

  function tunnel (nodeName: string, port: number, pskFile: string, logger = noopLogger, pnet?: MeshInit['pnet']): Mesh {
    const init: MeshInit = {
      nodeName,
      pnet,
      listenPort: port,
      listenAddresses: ['127.0.0.1'],
      relayNodes: [{ nodeName: 'relay-1', addresses: [{ host: '127.0.0.1', port: relayPort }] }],
      pskFile
    }
    const registry = new Registry()
    registries.set(nodeName, registry)
    const t = createMesh({ logger, metrics: registry }, init)
    tunnels.push(t)
    return t
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgemesh-tunnel-'))
    writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster')
    writeFileSync(join(dir, 'other-psk'), 'a different key entirely, 32+ bytes long')
    // A half-close-aware echo: answers after the client's FIN, like a request/response server.
    echo = createServer({ allowHalfOpen: true }, s => {
      let got = ''
      s.on('data', d => { got += d.toString() })
      s.on('end', () => s.end(`echo:${got}`))
    })
    await new Promise<void>(resolve => echo.listen(0, '127.0.0.1', resolve))
    echoPort = (echo.address() as { port: number }).port
    relayPort = await freePort()
  })

  after(async () => {
    for (const t of tunnels.reverse()) await t.stop()
    echo.close()
    rmSync(dir, { recursive: true, force: true })
  })

  test('node A reaches an endpoint on node B through the relay, and back', async () => {
    const relay = tunnel('relay-1', relayPort, join(dir, 'psk'))
    await relay.start()
    const a = tunnel('node-a', await freePort(), join(dir, 'psk'))
    const b = tunnel('node-b', await freePort(), join(dir, 'psk'))
    await Promise.all([a.start(), b.start()])
    // B's reservation on the relay must be in place before A can reach it.
    await eventually('B holds a reservation', () => b.addresses().some(x => x.includes('/p2p-circuit')), 15_000, 50)
    await eventually('A holds a reservation', () => a.addresses().some(x => x.includes('/p2p-circuit')), 15_000, 50)
    const conn = await a.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-b', service: 'default/echo' })
    assert.equal(await roundTrip(conn, 'hello through the relay'), 'echo:hello through the relay')
    assert.ok(a.peers().some(p => p.nodeName === 'node-b' && p.path === 'relay'), JSON.stringify(a.peers()))
    // The other way, and a second connection reusing the peer connection.
    for (let i = 0; i < 2; i++) {
      const back = await b.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-a', service: 'default/echo' })
      assert.equal(await roundTrip(back, `back ${i}`), `echo:back ${i}`)
    }
    // 1 MB both ways keeps every byte.
    const big = 'x'.repeat(1 << 20)
    const bulk = await a.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-b', service: 'default/echo' })
    assert.equal((await roundTrip(bulk, big)).length, big.length + 5)
  })

  test('a receiver that stops reading holds the sender back: the relay does not queue the transfer, and every byte arrives once it reads again', async () => {
    const a = tunnels[1] as Mesh
    let sinkSocket: Socket | undefined
    const received: Buffer[] = []
    // A server that reads nothing until told to.
    const sink = createServer(s => { sinkSocket = s; s.pause(); s.on('data', (d: Buffer) => received.push(d)) })
    await new Promise<void>(resolve => sink.listen(0, '127.0.0.1', resolve))
    try {
      const conn = await a.dialTcp({ ip: '127.0.0.1', port: (sink.address() as { port: number }).port, nodeName: 'node-b', service: 'default/sink' })
      const CHUNK = 64 << 10
      const TOTAL_CHUNKS = 768 // 48 MiB
      const chunkOf = (i: number): Buffer => Buffer.alloc(CHUNK, i % 251)
      let sent = 0
      // Write with backpressure until the writer has been held back for 1.5 s.
      for (; sent < TOTAL_CHUNKS; sent++) {
        if (conn.write(chunkOf(sent))) continue
        const drained = await Promise.race([once(conn, 'drain').then(() => true), delay(1500).then(() => false)])
        if (!drained) { sent++; break }
      }
      // The relay pauses whichever side sends faster than the other drains (patches/@libp2p+circuit-relay-v2*).
      assert.ok(sent * CHUNK < 24 << 20, `the sender got ${(sent * CHUNK) >> 20} MiB out while nobody read`)
      // The receiver reads again: the rest goes through, and every byte arrives in order.
      sinkSocket?.resume()
      for (; sent < TOTAL_CHUNKS; sent++) if (!conn.write(chunkOf(sent))) await once(conn, 'drain')
      conn.end()
      await eventually('every byte arrives', () => received.reduce((n, b) => n + b.length, 0) >= TOTAL_CHUNKS * CHUNK, 30_000, 50)
      const all = Buffer.concat(received)
      assert.equal(all.length, TOTAL_CHUNKS * CHUNK)
      for (let i = 0; i < TOTAL_CHUNKS; i++) assert.equal(all[i * CHUNK + CHUNK - 1], i % 251, `chunk ${i} in place`)
      conn.destroy()
    } finally {
      sink.close()
    }
  })

  test('50 proxied connections opened at once through the relay all carry their bytes (a burst of streams on a new relayed connection)', async () => {
    // A fresh pair of nodes, so the burst meets a relayed connection still being set up: yamux let only 10
    // streams wait there and then aborted the whole connection.
    const dirPsk = join(dir, 'psk')
    const b = tunnel('burst-b', await freePort(), dirPsk)
    const a = tunnel('burst-a', await freePort(), dirPsk)
    await b.start()
    await a.start()
    const sizes = new Map<number, number>()
    const sink = createServer(s => {
      let n = 0
      let id = -1
      s.on('data', (d: Buffer) => { if (id < 0) id = d[0] as number; n += d.length })
      s.on('end', () => { sizes.set(id, n); s.end() })
    })
    await new Promise<void>(resolve => sink.listen(0, '127.0.0.1', resolve))
    try {
      const port = (sink.address() as { port: number }).port
      const PER = 1 << 20
      await Promise.all(Array.from({ length: 50 }, async (_, i) => {
        const conn = await a.dialTcp({ ip: '127.0.0.1', port, nodeName: 'burst-b', service: 'default/sink' })
        const chunk = Buffer.alloc(64 << 10, i)
        for (let sent = 0; sent < PER; sent += chunk.length) if (!conn.write(chunk)) await once(conn, 'drain')
        conn.end()
        conn.resume()
        await once(conn, 'end')
      }))
      await eventually('every connection delivered all its bytes', () => sizes.size === 50, 30_000, 50)
      for (let i = 0; i < 50; i++) assert.equal(sizes.get(i), PER, `connection ${i}`)
    } finally {
      sink.close()
    }
  })

  test('UDP through the relay keeps datagram boundaries (framed between our agents)', async () => {
    const echoUdp = createSocket('udp4')
    echoUdp.on('message', (m, r) => echoUdp.send(m, r.port, r.address))
    await new Promise<void>(resolve => echoUdp.bind(0, '127.0.0.1', resolve))
    try {
      const a = tunnels.find(t => t.peerId() !== undefined && !t.isRelay) as Mesh
      const channel = await a.dialUdp({ ip: '127.0.0.1', port: echoUdp.address().port, nodeName: 'node-b', service: 'default/udp' })
      const sizes = [1, 1400, 7, 9000, 300]
      const got: number[] = []
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`got ${got.join(',')}`)), 5000)
        channel.onMessage(m => { got.push(m.every(b => b === m.length % 251) ? m.length : -1); if (got.length === sizes.length) { clearTimeout(t); resolve() } })
        for (const n of sizes) channel.send(Buffer.alloc(n, n % 251))
      })
      assert.deepEqual([...got].sort((x, y) => x - y), [...sizes].sort((x, y) => x - y))
      channel.close()
    } finally {
      echoUdp.close()
    }
  })

  test('an unreachable endpoint on the far node fails the dial with a reason', async () => {
    const a = tunnels.find(t => t.peerId() !== undefined && !t.isRelay) as Mesh
    const closed = await freePort()
    await assert.rejects(a.dialTcp({ ip: '127.0.0.1', port: closed, nodeName: 'node-b', service: 'default/x' }), /could not reach 127\.0\.0\.1/)
  })

  test('a node with another PSK reaches nothing and says why', async () => {
    const stranger = tunnel('stranger', await freePort(), join(dir, 'other-psk'), recordingLogger(lines))
    await stranger.start()
    await eventually('the mismatch is logged', () => lines.some(l => l.msg === 'PSK mismatch or not an EdgeMesh peer'), 15_000, 50)
    await assert.rejects(stranger.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-b', service: 'default/echo' }, AbortSignal.timeout(3000)))
    const failures = await registries.get('stranger')?.getSingleMetric('edgemesh_tunnel_relay_dial_failures_total')?.get()
    assert.ok((failures?.values.find(v => v.labels.reason === 'psk')?.value ?? 0) >= 1, JSON.stringify(failures?.values))
  })

  test('relayNodes edited in the config file apply without a restart; a broken edit keeps them', async () => {
    const cfg = join(dir, 'relays.json')
    writeFileSync(cfg, JSON.stringify([]))
    const lateLog: LogLine[] = []
    // A short heartbeat: under load the first reservation attempt may fail, and the heartbeat retries it.
    const late = createMesh({ logger: recordingLogger(lateLog), metrics: new Registry() }, { nodeName: 'node-late', listenPort: await freePort(), listenAddresses: ['127.0.0.1'], relayNodes: [], pskFile: join(dir, 'psk'), heartbeatMs: 1000 })
    tunnels.push(late)
    await late.start()
    const log: LogLine[] = []
    const watcher = new RelayWatcher<RelayNode[]>({ logger: recordingLogger(log) }, {
      file: cfg,
      read: async f => JSON.parse(await readFile(f, 'utf8')) as RelayNode[],
      apply: async relays => await late.updateRelays(relays)
    })
    await watcher.start()
    try {
      assert.ok(!late.addresses().some(a => a.includes('/p2p-circuit')))
      writeFileSync(cfg + '.tmp', JSON.stringify([{ nodeName: 'relay-1', addresses: [{ host: '127.0.0.1', port: relayPort }] }]))
      renameSync(cfg + '.tmp', cfg)
      await eventually('node-late reserves on the new relay', () => late.addresses().some(a => a.includes('/p2p-circuit')), 20_000, 50)
        .catch((err: Error) => { throw new Error(`${err.message}\n${JSON.stringify(lateLog)}`) })
      // Reachable through it now.
      const b = tunnels.find(t => t.peerId() !== undefined && !t.isRelay && t !== late) as Mesh
      const conn = await b.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-late', service: 'default/echo' })
      assert.equal(await roundTrip(conn, 'late'), 'echo:late')
      writeFileSync(cfg, '{ not json')
      await eventually('the broken edit is reported', () => log.some(l => l.level === 'error'), 5000, 50)
      assert.ok(late.addresses().some(a => a.includes('/p2p-circuit')), 'relays kept')
    } finally {
      await watcher.stop()
    }
  })

  test('a node on the WebAssembly XSalsa20 fallback and native nodes carry 8 MB both ways intact', async () => {
    const log: LogLine[] = []
    const wasm = tunnel('node-wasm', await freePort(), join(dir, 'psk'), recordingLogger(log), 'wasm')
    await wasm.start()
    assert.ok(log.some(l => l.msg === 'tunnel listening' && l.fields?.pnet === 'wasm'), JSON.stringify(log))
    await eventually('the wasm node holds a reservation on the native relay', () => wasm.addresses().some(x => x.includes('/p2p-circuit')), 15_000, 50)
    const a = tunnels.find(t => t.peerId() !== undefined && !t.isRelay) as Mesh
    const big = Buffer.from(randomBytes(6 << 20)).toString('base64')
    for (const [from, to] of [[a, 'node-wasm'], [wasm, 'node-b']] as const) {
      const conn = await from.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: to, service: 'default/echo' })
      const got = await roundTrip(conn, big)
      assert.ok(got === `echo:${big}`, `to ${to}: ${got.length} bytes back of ${big.length + 5}`)
    }
  })

  test('a missing PSK file stops the start with the file named', async () => {
    const t = tunnel('nokey', await freePort(), join(dir, 'missing'))
    await assert.rejects(t.start(), (err: Error & { code?: string }) => err.code === 'EM_ERR_TUNNEL_PSK' && err.message.includes(join(dir, 'missing')))
  })
})
