// Upstream's metricConfig listener, as the agent builds it from its config file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../../../src/config/load.ts'
import { createAgent } from '../../../src/app/agent.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { freePort } from '../../helpers/net.ts'

const services = new URL('../../fixtures/standalone/services.yaml', import.meta.url).pathname

async function refused (host: string, port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const s = connect(port, host)
    s.once('connect', () => { s.destroy(); resolve(false) })
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
  })
}

test('metricConfig.address binds the metrics port to that address only', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'edgemesh-metrics-'))
  const port = await freePort()
  const { config } = parseConfig('agent', [
    `kubeAPIConfig: {standaloneFile: ${services}}`,
    `commonConfig: {stateDir: ${stateDir}, statusPort: 0}`,
    'modules:',
    '  edgeDNS: {enable: false}',
    '  edgeProxy: {enable: false}',
    '  edgeTunnel:',
    '    enable: false',
    `    metricConfig: {enable: true, port: ${port}, address: 127.0.0.2}`
  ].join('\n'), { env: {} })
  const app = createAgent(config, { nodeName: 'edge-1', namespace: 'kubeedge', mode: 'ManualMode' }, { logger: noopLogger, env: {} })
  await app.start()
  try {
    const res = await fetch(`http://127.0.0.2:${port}/metrics`)
    assert.equal(res.status, 200)
    assert.match(await res.text(), /^edgemesh_/m)
    assert.equal(await refused('127.0.0.1', port), true, 'not on the other addresses')
  } finally {
    await app.stop()
    await rm(stateDir, { recursive: true, force: true })
  }
})
