// The mesh as the composition root builds it: its start rolls back as a whole.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { createMesh } from '../../../src/app/mesh.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { freePort } from '../../helpers/net.ts'
import { eventually } from '../../helpers/control-plane.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'

test('a tunnel that fails to start after the data path listened leaves no port bound', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-mesh-'))
  try {
    writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster')
    const dataPort = await freePort()
    const mesh = createMesh({ logger: noopLogger, metrics: new Registry() }, {
      nodeName: 'node-a',
      listenPort: await freePort(),
      // The data path listens on the first address; libp2p then refuses the second.
      listenAddresses: ['127.0.0.1', '256.0.0.1'],
      relayNodes: [],
      pskFile: join(dir, 'psk'),
      dataPath: { port: dataPort }
    })
    await assert.rejects(mesh.start())
    // Bindable again: the rollback closed the data path's listener.
    const probe = createServer()
    await new Promise<void>((resolve, reject) => { probe.once('error', reject); probe.listen(dataPort, '127.0.0.1', resolve) })
    await new Promise(resolve => probe.close(resolve))
    await mesh.stop()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a relay that dies is warned about at once, and its return is noticed within seconds', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-mesh-'))
  const lines: LogLine[] = []
  const relayPort = await freePort()
  writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster')
  const relayNodes = [{ nodeName: 'relay-1', addresses: [{ host: '127.0.0.1', port: relayPort }] }]
  const relay = (): ReturnType<typeof createMesh> => createMesh({ logger: noopLogger, metrics: new Registry() }, { nodeName: 'relay-1', listenPort: relayPort, listenAddresses: ['127.0.0.1'], relayNodes, pskFile: join(dir, 'psk') })
  let r = relay()
  // Upstream's heartbeat (120 s) would notice the return only after minutes.
  const node = createMesh({ logger: recordingLogger(lines), metrics: new Registry() }, { nodeName: 'edge-1', listenPort: await freePort(), listenAddresses: ['127.0.0.1'], relayNodes, pskFile: join(dir, 'psk'), heartbeatMs: 120_000 })
  try {
    await r.start()
    await node.start()
    await eventually('reserved on the relay', () => node.isReady(), 10_000, 50)
    await r.stop()
    const lost = await eventually('the loss is logged', () => lines.some(l => l.level === 'warn' && l.msg === 'relay connection lost; reconnecting'), 5000, 20)
    assert.ok(lost < 2000, `warned after ${Math.round(lost)} ms`)
    r = relay()
    await r.start()
    const back = await eventually('the return is logged', () => lines.some(l => l.level === 'info' && l.msg === 'relay connection back'), 15_000, 50)
    assert.ok(back < 10_000, `back after ${Math.round(back)} ms`)
    await eventually('reserved again', () => node.isReady(), 5000, 50)
  } finally {
    await node.stop()
    await r.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a PSK file other users can read is warned about with the fix; a 0600 one is not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-mesh-'))
  try {
    for (const mode of [0o644, 0o600]) {
      const lines: LogLine[] = []
      const file = join(dir, `psk-${mode.toString(8)}`)
      writeFileSync(file, 'edgemesh-ts-test-psk-not-for-any-real-cluster', { mode })
      chmodSync(file, mode)
      const mesh = createMesh({ logger: recordingLogger(lines), metrics: new Registry() }, { nodeName: 'node-a', listenPort: await freePort(), listenAddresses: ['127.0.0.1'], relayNodes: [], pskFile: file })
      try {
        await mesh.start()
      } finally {
        await mesh.stop()
      }
      const warned = lines.find(l => l.msg === 'the PSK file is readable by others')
      if (mode === 0o600) assert.equal(warned, undefined)
      else {
        assert.equal(warned?.level, 'warn')
        assert.equal(warned?.fields?.file, file)
        assert.match(String(warned?.fields?.hint), /mode 0644 .* chmod 600/)
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
