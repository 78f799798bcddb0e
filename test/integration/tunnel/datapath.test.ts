// EdgeTunnel with the TLS data path on loopback: between two of our agents a
// proxied TCP connection takes the data path (learned over libp2p); a peer
// without it (as a Go EdgeMesh) still gets the libp2p proxy protocol.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { Server } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { createMesh } from '../../../src/app/mesh.ts'
import type { Mesh } from '../../../src/app/mesh.ts'
import type { MeshInit } from '../../../src/app/mesh.ts'
import { EndpointRefusedError } from '../../../src/mesh/errors.ts'
import { earlyAnswer } from '../../../src/mesh/early.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'
import { eventually } from '../../helpers/control-plane.ts'
import { freePort, roundTrip, startEcho } from '../../helpers/net.ts'

describe('EdgeTunnel + TLS data path on loopback', () => {
  let dir: string
  let echo: Server
  let echoPort: number
  let relayPort: number
  const tunnels: Mesh[] = []
  const registries = new Map<string, Registry>()

  function tunnel (nodeName: string, port: number, dataPath: boolean | 'shared', logger = noopLogger): Mesh {
    const init: MeshInit = {
      nodeName,
      listenPort: port,
      listenAddresses: ['127.0.0.1'],
      relayNodes: [{ nodeName: 'relay-1', addresses: [{ host: '127.0.0.1', port: relayPort }] }],
      pskFile: join(dir, 'psk'),
      // 'shared': no data path port of its own; it serves on the tunnel port, as by default.
      ...(dataPath === 'shared' ? { dataPath: {} } : dataPath ? { dataPath: { port: 0 } } : {})
    }
    const registry = new Registry()
    registries.set(nodeName, registry)
    const t = createMesh({ logger, metrics: registry }, init)
    tunnels.push(t)
    return t
  }

  async function streams (nodeName: string): Promise<Record<string, number>> {
    const m = await registries.get(nodeName)?.getSingleMetric('edgemesh_tunnel_streams_total')?.get()
    return Object.fromEntries((m?.values ?? []).map(v => [`${String(v.labels.direction)}/${String(v.labels.result)}`, v.value]))
  }

  async function dataPathConnections (nodeName: string): Promise<number> {
    const m = await registries.get(nodeName)?.getSingleMetric('edgemesh_datapath_connections_total')?.get()
    return (m?.values ?? []).filter(v => v.labels.result === 'ok').reduce((n, v) => n + v.value, 0)
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgemesh-tunnel-dp-'))
    writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster')
    ;({ server: echo, port: echoPort } = await startEcho())
    relayPort = await freePort()
  })

  after(async () => {
    for (const t of tunnels.reverse()) await t.stop()
    echo.close()
    rmSync(dir, { recursive: true, force: true })
  })

  test('between our agents proxied TCP takes the data path; a peer without it gets libp2p; refusals keep their reason', async () => {
    const relay = tunnel('relay-1', relayPort, true)
    await relay.start()
    const lines: LogLine[] = []
    const a = tunnel('node-a', await freePort(), true, recordingLogger(lines))
    const b = tunnel('node-b', await freePort(), true)
    // Stands in for a Go EdgeMesh: no data path protocol.
    const legacy = tunnel('node-legacy', await freePort(), false)
    await Promise.all([a.start(), b.start(), legacy.start()])
    await eventually('reservations', () => [a, b, legacy].every(t => t.addresses().some(x => x.includes('/p2p-circuit'))), 15_000, 50)

    const payload = randomBytes(4 << 20)
    const conn = await a.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-b', service: 'default/echo' })
    assert.ok((await roundTrip(conn, payload)).equals(payload), '4 MB intact over the data path')
    assert.ok(a.peers().some(p => p.nodeName === 'node-b' && p.dataPath === 'direct'), JSON.stringify(a.peers()))
    assert.equal((await streams('node-a'))['outbound/ok'], undefined, 'no libp2p proxy stream was opened by A')
    assert.equal(await dataPathConnections('node-a'), 1, 'counted once, as a data path connection')
    assert.equal((await streams('node-b'))['inbound/ok'], undefined, 'no libp2p proxy stream was served by B')

    const old = await a.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-legacy', service: 'default/echo' })
    assert.ok((await roundTrip(old, Buffer.from('hello'))).equals(Buffer.from('hello')))
    assert.equal((await streams('node-legacy'))['inbound/ok'], 1, 'the legacy peer served it over /libp2p/tunnel-proxy/1.0.0')
    assert.ok(a.peers().some(p => p.nodeName === 'node-legacy' && p.dataPath === undefined))
    const told = (): LogLine[] => lines.filter(l => l.level === 'warn' && l.msg === 'peer has no data path; its proxied connections use libp2p')
    assert.equal(told().length, 1, 'the operator is told why, once')
    assert.equal(told()[0]?.fields?.node, 'node-legacy')

    await assert.rejects(a.dialTcp({ ip: '127.0.0.1', port: 1, nodeName: 'node-b', service: 'default/closed' }), (err: Error) => {
      assert.ok(err instanceof EndpointRefusedError, String(err))
      assert.match(err.message, /could not reach 127\.0\.0\.1:1/)
      return true
    })
    // Many connections at once all go through, none on libp2p.
    const many = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const c = await a.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-b', service: 'default/echo' })
      return (await roundTrip(c, Buffer.from(`n${i}`))).toString()
    }))
    assert.deepEqual(many, Array.from({ length: 20 }, (_, i) => `n${i}`))
    assert.equal(await dataPathConnections('node-a'), 21)
    assert.equal((await streams('node-a'))['outbound/ok'], 1, 'only the legacy peer\'s connection took libp2p')
    // B said it reads frames over libp2p: connections that ended cleanly came back for the next ones.
    const reused = (await registries.get('node-a')?.getSingleMetric('edgemesh_datapath_connections_reused_total')?.get())?.values[0]?.value ?? 0
    assert.ok(reused >= 20, `${reused} connections reused`)

    // The proxy's dials ask for early data: through the data path the connection comes back before
    // B's answer, and what is written at once arrives; over libp2p it comes back answered.
    const early = await a.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-b', service: 'default/echo' }, undefined, { early: true })
    const answered = earlyAnswer(early)
    assert.ok(answered !== undefined, 'returned before the answer')
    early.write('ahead ')
    await answered
    assert.equal((await roundTrip(early, 'and after')).toString(), 'ahead and after')
    const legacyEarly = await a.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-legacy', service: 'default/echo' }, undefined, { early: true })
    assert.equal(earlyAnswer(legacyEarly), undefined)
    legacyEarly.destroy()
  })

  test('one port per node: the data path shares each tunnel port, relays included, beside libp2p', async () => {
    const sharedRelayPort = await freePort()
    const relayNodes = [{ nodeName: 'relay-2', addresses: [{ host: '127.0.0.1', port: sharedRelayPort }] }]
    const mesh = (nodeName: string, port: number): Mesh => {
      const registry = new Registry()
      registries.set(nodeName, registry)
      const t = createMesh({ logger: noopLogger, metrics: registry }, { nodeName, listenPort: port, listenAddresses: ['127.0.0.1'], relayNodes, pskFile: join(dir, 'psk'), dataPath: {} })
      tunnels.push(t)
      return t
    }
    const relay = mesh('relay-2', sharedRelayPort)
    await relay.start()
    const [cPort, dPort] = [await freePort(), await freePort()]
    const c = mesh('node-c', cPort)
    const d = mesh('node-d', dPort)
    await Promise.all([c.start(), d.start()])
    // libp2p on the same ports: both hold a reservation on the relay.
    await eventually('reservations', () => [c, d].every(t => t.addresses().some(x => x.includes('/p2p-circuit'))), 15_000, 50)
    // The relay's data path on its tunnel port: both nodes park there.
    const parked = async (): Promise<number> => (await registries.get('relay-2')?.getSingleMetric('edgemesh_datapath_relay_parked_connections')?.get())?.values[0]?.value ?? 0
    const deadline = Date.now() + 10_000
    while (await parked() < 2 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    assert.ok(await parked() >= 2, `parked on the relay's tunnel port: ${await parked()}`)
    const payload = randomBytes(1 << 20)
    const conn = await c.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-d', service: 'default/echo' })
    assert.ok((await roundTrip(conn, payload)).equals(payload), '1 MB intact over the data path on D\'s tunnel port')
    assert.ok(c.peers().some(p => p.nodeName === 'node-d' && p.dataPath === 'direct'), JSON.stringify(c.peers()))
    assert.equal((await streams('node-c'))['outbound/ok'], undefined, 'no libp2p proxy stream')
  })
})
