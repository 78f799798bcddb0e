// The mesh as the composition root builds it: its start rolls back as a whole.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { createMesh } from '../../../src/app/agent.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { freePort } from '../../helpers/net.ts'

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
