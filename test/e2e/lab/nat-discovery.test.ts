// NAT discovery in the seed lab: the relays (public, cloud) answer STUN on UDP
// 20006 beside the tunnel's TCP; each agent learns what its router does. Site A
// masquerades (one mapping per local port, port kept, only replies come in);
// site B maps every destination to a new port (symmetric).
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Lab, seed } from '../../lab/index.ts'
import { rootOnly, waitFor } from './helpers.ts'
import { serviceYaml } from '../../helpers/services.ts'
import type { NatReport } from '../../../src/nat/index.ts'

const entry = join(fileURLToPath(new URL('../../../', import.meta.url)), 'src/bin/edgemesh.ts')
const PSK = 'edgemesh-ts-test-psk-not-for-any-real-cluster'
const RELAYS = ['    relayNodes:', '    - {nodeName: k8s-master, advertiseAddress: [203.0.113.10]}', '    - {nodeName: k8s-node1, advertiseAddress: [203.0.113.11]}']

describe('NAT discovery in the seed lab', rootOnly, () => {
  let lab: Lab
  let dir: string
  const reports = new Map<string, NatReport>()

  async function nat (node: string): Promise<NatReport | undefined> {
    const r = await lab.exec(node, ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:10551/status'])
    return r.stdout === '' ? undefined : (JSON.parse(r.stdout) as { nat?: NatReport }).nat
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-nat-lab-'))
    await writeFile(join(dir, 'psk'), PSK)
    await writeFile(join(dir, 'world.yaml'), serviceYaml({ name: 'svc', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 9376 }], endpoints: [{ ip: '203.0.113.10', nodeName: 'k8s-master' }] }))
    await writeFile(join(dir, 'agent.yaml'), [
      'kubeAPIConfig:', `  standaloneFile: ${join(dir, 'world.yaml')}`,
      'modules:', '  edgeDNS: {enable: false}', '  edgeProxy: {enable: false}',
      '  edgeTunnel:', '    enable: true', `    psk: {path: ${join(dir, 'psk')}}`, ...RELAYS, ''
    ].join('\n'))
    lab = await Lab.up(seed, { id: Lab.newId() })
    const nodes = ['k8s-master', 'k8s-node1', 'edge-a1', 'edge-b1']
    await Promise.all(nodes.map(async node => {
      const p = lab.spawn(node, [process.execPath, entry, 'agent', '--config-file', join(dir, 'agent.yaml')], { env: { NAMESPACE: 'kubeedge' }, name: 'agent' })
      await p.waitForOutput('"msg":"running"', 20_000)
    }))
    for (const node of nodes) {
      await waitFor(`${node} checked its NAT`, async () => {
        const r = await nat(node)
        if (r !== undefined) reports.set(node, r)
        return r !== undefined
      }, 15_000)
    }
  })

  after(async () => {
    await lab?.down()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('a relay on the public network is public: the other relay sees its own address and port', () => {
    const r = reports.get('k8s-master') as NatReport
    assert.equal(r.kind, 'public', r.summary)
    assert.deepEqual(r.mapped, [{ relay: 'k8s-node1', address: `203.0.113.10:${r.localPort}` }])
  })

  test('site A (masquerade): a cone keeping the port, one mapping seen by both relays, replies from another port filtered', () => {
    const r = reports.get('edge-a1') as NatReport
    assert.equal(r.kind, 'cone', r.summary)
    assert.equal(r.mapping, 'endpoint-independent')
    assert.equal(r.portPreserved, true)
    assert.equal(r.filtering, 'port-dependent')
    assert.deepEqual(r.mapped.map(m => m.address), [`203.0.113.1:${r.localPort}`, `203.0.113.1:${r.localPort}`])
    assert.deepEqual(r.candidates, [`192.168.1.11:${r.localPort}`, `203.0.113.1:${r.localPort}`])
  })

  test('site B (fully-random): symmetric, a different public port for each relay', () => {
    const r = reports.get('edge-b1') as NatReport
    assert.equal(r.kind, 'symmetric', r.summary)
    assert.equal(r.mapping, 'endpoint-dependent')
    assert.equal(new Set(r.mapped.map(m => m.address)).size, 2)
    assert.ok(r.mapped.every(m => m.address.startsWith('203.0.113.2:')))
  })

  test('edgemesh doctor on edge-b1 says the same, as a warning with the fix', async () => {
    const r = await lab.exec('edge-b1', [process.execPath, entry, 'doctor', '--config-file', join(dir, 'agent.yaml')])
    assert.match(r.stdout, /! NAT: symmetric: symmetric NAT: a new public port for every destination/)
    assert.match(r.stdout, /fix: enable NAT-PMP, PCP or UPnP on the router .*, or use a router that keeps one mapping per local port/)
  })
})
