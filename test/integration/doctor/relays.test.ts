// The doctor's relay checks against a real relay on loopback, addressed the
// way the demo addresses relays: `host:port` in advertiseAddress.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { parseConfig } from '../../../src/config/load.ts'
import { runDoctor } from '../../../src/doctor/doctor.ts'
import { createMesh } from '../../../src/app/mesh.ts'
import type { Mesh } from '../../../src/app/mesh.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { freePort } from '../../helpers/net.ts'

/** libp2p resets a sixth connection from one address within a second; each doctor run makes a few. */
const settle = async (): Promise<void> => { await new Promise(resolve => setTimeout(resolve, 1100)) }

describe('doctor: relays named as host:port', () => {
  let dir: string
  let relay: Mesh
  let relayPort: number

  function config (pskFile: string, advertiseAddress: string, dataPort = 20008): ReturnType<typeof parseConfig<'agent'>>['config'] {
    return parseConfig('agent', JSON.stringify({
      kubeAPIConfig: { standaloneFile: join(dir, 'services.yaml') },
      modules: {
        edgeDNS: { enable: false },
        edgeProxy: { enable: false },
        // listenPort stays upstream's 20006, where nothing listens: the address names the relay's port.
        edgeTunnel: { enable: true, psk: { enable: true, path: pskFile }, dataPath: { port: dataPort }, relayNodes: [{ nodeName: 'relay-1', advertiseAddress: [advertiseAddress] }] }
      }
    }), { env: {}, checkFiles: false }).config
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgemesh-doctor-relays-'))
    writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster')
    writeFileSync(join(dir, 'other-psk'), 'a different key entirely, 32+ bytes long')
    writeFileSync(join(dir, 'services.yaml'), '')
    relayPort = await freePort()
    relay = createMesh({ logger: noopLogger, metrics: new Registry() }, {
      nodeName: 'relay-1',
      listenPort: relayPort,
      listenAddresses: ['127.0.0.1'],
      relayNodes: [{ nodeName: 'relay-1', addresses: [{ host: '127.0.0.1', port: relayPort }] }],
      pskFile: join(dir, 'psk')
    })
    await relay.start()
  })
  after(async () => {
    await relay?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('a relay at host:port is reachable and agrees on the PSK', async () => {
    const results = await runDoctor({ config: config(join(dir, 'psk'), `127.0.0.1:${relayPort}`), edgecorePath: '/nonexistent/edgecore.yaml', nodeName: 'edge-1', env: {} })
    const reach = results.find(r => r.id === 'relay.relay-1')
    assert.equal(reach?.status, 'pass', JSON.stringify(reach))
    assert.match(reach?.title ?? '', new RegExp(`TCP ${relayPort}`))
    const psk = results.find(r => r.id === 'psk')
    assert.equal(psk?.status, 'pass', JSON.stringify(psk))
  })

  test('another PSK fails the PSK check, not the reachability check', async () => {
    const results = await runDoctor({ config: config(join(dir, 'other-psk'), `127.0.0.1:${relayPort}`), edgecorePath: '/nonexistent/edgecore.yaml', nodeName: 'edge-1', env: {} })
    assert.equal(results.find(r => r.id === 'relay.relay-1')?.status, 'pass')
    const psk = results.find(r => r.id === 'psk')
    assert.equal(psk?.status, 'fail', JSON.stringify(psk))
    assert.match(psk?.detail ?? '', /PSK mismatch/)
  })

  test('the relay\'s data path port is checked too: open passes, closed warns with the fix', async () => {
    const dataPort = await freePort()
    const withData = createMesh({ logger: noopLogger, metrics: new Registry() }, {
      nodeName: 'relay-2',
      listenPort: await freePort(),
      listenAddresses: ['127.0.0.1'],
      relayNodes: [],
      pskFile: join(dir, 'psk'),
      dataPath: { port: dataPort }
    })
    await withData.start()
    try {
      const cfg = config(join(dir, 'psk'), `127.0.0.1:${relayPort}`, dataPort)
      await settle()
      const open = (await runDoctor({ config: cfg, edgecorePath: '/nonexistent/edgecore.yaml', nodeName: 'edge-1', env: {} })).find(r => r.id === 'relay.relay-1.datapath')
      assert.equal(open?.status, 'pass', JSON.stringify(open))
      assert.match(open?.title ?? '', new RegExp(`TCP ${dataPort}`))
    } finally {
      await withData.stop()
    }
    const cfg = config(join(dir, 'psk'), `127.0.0.1:${relayPort}`, dataPort)
    await settle()
    const all = await runDoctor({ config: cfg, edgecorePath: '/nonexistent/edgecore.yaml', nodeName: 'edge-1', env: {} })
    const closed = all.find(r => r.id === 'relay.relay-1.datapath')
    assert.equal(closed?.status, 'warn', JSON.stringify(closed))
    assert.match(closed?.detail ?? '', /fall back to libp2p/)
    assert.match(closed?.fix ?? '', new RegExp(`open TCP ${dataPort} to relay-1`))
  })
})
