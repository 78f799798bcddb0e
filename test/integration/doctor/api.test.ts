// The doctor's API check against a real kube-apiserver: reachable with a
// kubeconfig, and a clear failure naming where it looked when it is not.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { parseConfig } from '../../../src/config/load.ts'
import { runDoctor } from '../../../src/doctor/doctor.ts'
import { haveControlPlaneTools, startControlPlane } from '../../helpers/control-plane.ts'
import type { ControlPlane } from '../../helpers/control-plane.ts'

function config (kubeConfig: string, master = ''): ReturnType<typeof parseConfig<'agent'>>['config'] {
  return parseConfig('agent', JSON.stringify({
    kubeAPIConfig: { kubeConfig, master },
    modules: { edgeDNS: { enable: false }, edgeProxy: { enable: false }, edgeTunnel: { enable: false } }
  }), { env: {}, checkFiles: false }).config
}

describe('doctor: Kubernetes API check', { skip: haveControlPlaneTools() ? false : 'control plane not built (npm run tools)' }, () => {
  let cp: ControlPlane
  before(async () => { cp = await startControlPlane() })
  after(async () => { await cp?.stop() })

  test('passes against the API server the kubeconfig names; everything else is skipped', async () => {
    const results = await runDoctor({ config: config(cp.kubeconfigPath), edgecorePath: '/nonexistent/edgecore.yaml', nodeName: 'n1', env: {} })
    const api = results.find(r => r.id === 'api')
    assert.equal(api?.status, 'pass', JSON.stringify(api))
    assert.ok(results.filter(r => r.id !== 'api').every(r => r.status === 'skip' || r.status === 'warn'), JSON.stringify(results))
  })

  test('fails with where it looked and a fix when the API server is unreachable', async () => {
    const results = await runDoctor({ config: config(cp.kubeconfigPath, 'https://127.0.0.1:1'), edgecorePath: '/nonexistent/edgecore.yaml', nodeName: 'n1', env: {} })
    const api = results.find(r => r.id === 'api')
    assert.equal(api?.status, 'fail')
    assert.match(api?.detail ?? '', /127\.0\.0\.1:1/)
    assert.ok(api?.fix !== undefined)
  })
})
