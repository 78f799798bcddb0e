// The secure identity mode on loopback: random keys kept 0600, PeerIDs learned
// through the relay and pinned; a node claiming a pinned name with another key
// is refused; keys survive a restart.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { Server } from 'node:net'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { createMesh } from '../../../src/app/mesh.ts'
import type { Mesh } from '../../../src/app/mesh.ts'
import type { MeshInit } from '../../../src/app/mesh.ts'
import { compatSeed } from '../../../src/tunnel/identity.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'
import { eventually } from '../../helpers/control-plane.ts'
import { freePort, roundTrip, startEcho } from '../../helpers/net.ts'

describe('EdgeTunnel secure identity mode: random keys, PeerIDs learned through the relay and pinned', () => {
  let dir: string
  let echo: Server
  let echoPort: number
  let relayPort: number
  const tunnels: Mesh[] = []
  let nodeA: Mesh

  function tunnel (nodeName: string, port: number, stateDir: string, logger = noopLogger, extra: Partial<MeshInit> = {}): Mesh {
    const t = createMesh({ logger, metrics: new Registry() }, {
      nodeName,
      listenPort: port,
      listenAddresses: ['127.0.0.1'],
      relayNodes: [{ nodeName: 'relay-s', addresses: [{ host: '127.0.0.1', port: relayPort }] }],
      pskFile: join(dir, 'psk'),
      heartbeatMs: 1000,
      identity: { mode: 'secure', keyFile: join(stateDir, 'tunnel-identity.key'), pinsFile: join(stateDir, 'tunnel-peers.json') },
      // Asked for, and left off: its keys are the PSK's, not the nodes'.
      dataPath: { port: 0 },
      ...extra
    })
    tunnels.push(t)
    return t
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgemesh-secure-'))
    writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster')
    ;({ server: echo, port: echoPort } = await startEcho('echo:'))
    relayPort = await freePort()
  })

  after(async () => {
    for (const t of tunnels.reverse()) await t.stop()
    echo.close()
    rmSync(dir, { recursive: true, force: true })
  })

  test('nodes reach each other through the relay with random keys; keys are 0600 and pinned names stick', async () => {
    const relay = tunnel('relay-s', relayPort, join(dir, 'relay'))
    await relay.start()
    const a = tunnel('node-a', await freePort(), join(dir, 'a'))
    const b = tunnel('node-b', await freePort(), join(dir, 'b'))
    await Promise.all([a.start(), b.start()])
    nodeA = a
    // Not upstream's derivation: the PeerID does not follow from the name.
    const { generateKeyPairFromSeed } = await import('@libp2p/crypto/keys')
    const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
    assert.notEqual(a.peerId(), peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', compatSeed('node-a'))).toString())
    assert.equal(statSync(join(dir, 'a', 'tunnel-identity.key')).mode & 0o777, 0o600)
    await eventually('B reserves on the relay', () => b.addresses().some(x => x.includes('/p2p-circuit')), 15_000, 50)
    await eventually('A reserves on the relay', () => a.addresses().some(x => x.includes('/p2p-circuit')), 15_000, 50)
    const conn = await a.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-b', service: 'default/echo' })
    assert.equal((await roundTrip(conn, 'secure')).toString(), 'echo:secure')
    assert.equal(a.peers().find(p => p.nodeName === 'node-b')?.dataPath, undefined, 'libp2p carried it, not the data path')
    const pins = JSON.parse(readFileSync(join(dir, 'a', 'tunnel-peers.json'), 'utf8')) as Record<string, string>
    assert.equal(pins['node-b'], b.peerId())
    assert.equal(pins['relay-s'], relay.peerId())
    // A restart keeps the key, so the PeerID.
    const before = b.peerId()
    await b.stop()
    await b.start()
    assert.equal(b.peerId(), before)
  })

  test('another key claiming a pinned name is refused; a key readable by others keeps the tunnel down, not the node', async () => {
    const lines: LogLine[] = []
    // An impostor with the PSK but a fresh key, calling itself node-b.
    const impostor = tunnel('node-b', await freePort(), join(dir, 'impostor'), recordingLogger(lines))
    await impostor.start()
    await eventually('the relay refuses the name', () => lines.some(l => l.msg === 'relay refused this node\'s name'), 15_000, 50)
    // node-a still reaches the real node-b.
    const conn = await nodeA.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'node-b', service: 'default/echo' })
    assert.equal((await roundTrip(conn, 'still b')).toString(), 'echo:still b')
    await impostor.stop()

    const loose = join(dir, 'loose')
    const first = tunnel('node-c', await freePort(), loose)
    await first.start()
    await first.stop()
    chmodSync(join(loose, 'tunnel-identity.key'), 0o644)
    const looseLines: LogLine[] = []
    const again = tunnel('node-c', await freePort(), loose, recordingLogger(looseLines), { stateRetryMs: 200 })
    // The rest of the node keeps running: the tunnel stays down and says why, and starts once the key is fixed.
    await again.start()
    assert.equal(again.isReady(), false)
    assert.match(again.failure() ?? '', /chmod 600/)
    assert.equal(again.peerId(), undefined)
    assert.equal(looseLines.filter(l => l.level === 'error' && l.msg.startsWith('tunnel not started')).length, 1)
    chmodSync(join(loose, 'tunnel-identity.key'), 0o600)
    await eventually('the tunnel starts once the key is fixed', () => again.peerId() !== undefined, 5000, 50)
    assert.equal(again.failure(), undefined)
  })
})
