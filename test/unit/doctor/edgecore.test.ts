// Where the doctor looks for edgecore's config, and that it says which file it read.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../../../src/config/load.ts'
import { runDoctor } from '../../../src/doctor/doctor.ts'

const config = parseConfig('agent', JSON.stringify({
  kubeAPIConfig: { standaloneFile: '/nonexistent/services.yaml' },
  modules: { edgeDNS: { enable: false }, edgeProxy: { enable: false }, edgeTunnel: { enable: false } }
}), { env: {}, checkFiles: false }).config
const run = async (): Promise<{ code: number, stdout: string, stderr: string }> => ({ code: 1, stdout: '', stderr: 'not here' })

test('edgecore.yaml at the install guide\'s path is read when the keadm path has none, and the doctor says which it read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-edgecore-'))
  try {
    const keadm = join(dir, 'config', 'edgecore.yaml')
    const seed = join(dir, 'edgecore.yaml')
    await writeFile(seed, 'modules:\n  metaManager:\n    metaServer:\n      enable: true\n  edged:\n    tailoredKubeletConfig:\n      clusterDNS: [169.254.96.16]\n')
    const results = await runDoctor({ config, edgecorePath: [keadm, seed], nodeName: 'edge-1', env: {}, run })
    const meta = results.find(r => r.id === 'edgecore.metaServer')
    assert.equal(meta?.status, 'pass', JSON.stringify(meta))
    assert.ok(meta?.detail.includes(`read from ${seed}`))
    assert.equal(results.find(r => r.id === 'edgecore.clusterDNS')?.status, 'pass')
    await rm(seed)
    const none = await runDoctor({ config, edgecorePath: [keadm, seed], nodeName: 'edge-1', env: {}, run })
    const skipped = none.find(r => r.id === 'edgecore.metaServer')
    assert.equal(skipped?.status, 'skip')
    assert.ok(skipped?.detail.includes(`${keadm} or ${seed}`), skipped?.detail)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
