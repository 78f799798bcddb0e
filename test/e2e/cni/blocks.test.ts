// Pod blocks claimed through a real kube-apiserver (coordination.k8s.io Leases):
// nodes racing for blocks never get the same one, a node gets its own back, a
// full range is refused naming it, the state file serves a restart without the
// API, and release gives the block back. A node's spec.podCIDR is claimed as
// it is, and claims from a range step around it.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { freePort } from '../../helpers/net.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startControlPlane, haveControlPlaneTools, eventually } from '../../helpers/control-plane.ts'
import type { ControlPlane } from '../../helpers/control-plane.ts'
import { KubeClient, resolveKubeConnection } from '../../../src/kube/index.ts'
import { BlockClaims, blocksOf, kubeLeaseApi, leaseName } from '../../../src/cni/blocks.ts'
import type { LeaseApi } from '../../../src/cni/blocks.ts'
import { noopLogger } from '../../../src/observability/logger.ts'

const entry = fileURLToPath(new URL('../../../src/bin/edgemesh.ts', import.meta.url))
const skip = haveControlPlaneTools() ? false : 'control plane not built (npm run tools)'

describe('pod blocks claimed through the API server', { skip }, () => {
  let cp: ControlPlane
  let client: KubeClient
  let api: LeaseApi
  let dir: string

  const claims = (node: string, cidrs: string[]): BlockClaims =>
    new BlockClaims({ api, logger: noopLogger }, { nodeName: node, cidrs, namespace: 'kubeedge', stateFile: join(dir, node, 'cni-block.json') })

  before(async () => {
    cp = await startControlPlane()
    await cp.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kubeedge' } })
    client = new KubeClient(resolveKubeConnection({ master: '', kubeConfig: cp.kubeconfigPath, contentType: 'application/json', qps: 200, burst: 400 } as never, { env: {} }))
    api = kubeLeaseApi(client)
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-blocks-'))
  })

  after(async () => {
    client?.close()
    await cp?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('24 nodes claiming at once from 10.244.64.0/18 get 24 different /24s; each gets its own back', async () => {
    const nodes = Array.from({ length: 24 }, (_, i) => `edge-${i}`)
    const got = await Promise.all(nodes.map(async n => await claims(n, ['10.244.64.0/18']).claim()))
    assert.equal(new Set(got).size, 24, got.join(' '))
    const all = blocksOf('10.244.64.0/18', 24)
    assert.ok(got.every(b => all.includes(b)))
    assert.deepEqual(await Promise.all(nodes.map(async n => await claims(n, ['10.244.64.0/18']).claim())), got, 'a claim again returns the same block')
  })

  test('more nodes than blocks: every block is claimed once and the others are refused naming the range', async () => {
    const nodes = Array.from({ length: 6 }, (_, i) => `small-${i}`)
    const results = await Promise.allSettled(nodes.map(async n => await claims(n, ['10.250.0.0/22']).claim()))
    const won = results.flatMap(r => r.status === 'fulfilled' ? [r.value] : [])
    assert.deepEqual([...won].sort(), ['10.250.0.0/24', '10.250.1.0/24', '10.250.2.0/24', '10.250.3.0/24'])
    for (const r of results.filter(r => r.status === 'rejected')) assert.match(String((r as PromiseRejectedResult).reason), /no free \/24 pod block in 10\.250\.0\.0\/22/)
  })

  test('without the API a node keeps the block of its state file; release deletes its Lease and the block is free again', async () => {
    const mine = claims('edge-0', ['10.244.64.0/18'])
    const block = await mine.claim()
    const offline = new BlockClaims({ api: { ...api, list: async () => { throw new Error('connect ECONNREFUSED') } }, logger: noopLogger }, { nodeName: 'edge-0', cidrs: ['10.244.64.0/18'], namespace: 'kubeedge', stateFile: join(dir, 'edge-0', 'cni-block.json') })
    assert.equal(await offline.claim(), block)
    await mine.release()
    const taken = await claims('latecomer', [block]).claim()
    assert.equal(taken, block, 'the released block went to the next claimer')
  })

  test('a node\'s spec.podCIDR is claimed as it is; range claims skip every block overlapping a claim; an overlap with another node is refused naming it; a block held before is given up', async () => {
    assert.equal(await claims('cloud-a', ['10.120.0.0/16']).claimExact('10.120.1.0/24'), '10.120.1.0/24')
    assert.equal(await claims('cloud-a', ['10.120.0.0/16']).claimExact('10.120.1.0/24'), '10.120.1.0/24', 'again: the same')
    assert.equal(await claims('cloud-b', ['10.120.0.0/22']).claim(), '10.120.0.0/24')
    assert.equal(await claims('cloud-c', ['10.120.0.0/22']).claim(), '10.120.2.0/24', 'the podCIDR block is skipped')
    await assert.rejects(claims('cloud-d', ['10.120.0.0/16']).claimExact('10.120.2.0/23'), /pod CIDR 10\.120\.2\.0\/23 \(spec\.podCIDR\) overlaps pod block 10\.120\.2\.0\/24 held by node cloud-c/)
    assert.equal(await claims('cloud-e', ['10.121.0.0/16']).claimExact('10.121.0.0/23'), '10.121.0.0/23')
    assert.equal(await claims('edge-x', ['10.121.0.0/22']).claim(), '10.121.2.0/24', 'both /24s inside the /23 are skipped')
    assert.equal(await claims('cloud-f', ['10.122.0.0/22']).claim(), '10.122.0.0/24')
    assert.equal(await claims('cloud-f', ['10.122.0.0/22']).claimExact('10.122.3.0/24'), '10.122.3.0/24')
    assert.equal(await api.get('kubeedge', leaseName('10.122.0.0/24')), undefined, 'the block claimed before is given up')
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'cloud-f', 'cni-block.json'), 'utf8')), { node: 'cloud-f', block: '10.122.3.0/24' })
  })

  /** Runs `edgemesh agent` with the edge CNI (no tunnel) as `node` until its /status shows a block; that status. */
  async function agentBlock (node: string): Promise<Record<string, unknown> | undefined> {
    const statusPort = await freePort()
    const stateDir = join(dir, `${node}-state`)
    const file = join(dir, `${node}.yaml`)
    await writeFile(file, stringify({
      kubeAPIConfig: { kubeConfig: cp.kubeconfigPath },
      commonConfig: { statusPort, stateDir },
      modules: { edgeDNS: { enable: false }, edgeProxy: { enable: false }, edgeTunnel: { enable: false }, edgeCNI: { enable: true, meshCIDRConfig: { cloudCIDR: ['10.100.0.0/16'], edgeCIDR: ['10.200.0.0/16'] } } }
    }))
    const logs: string[] = []
    const proc = spawn(process.execPath, [entry, 'agent', '--config-file', file], { env: { PATH: process.env.PATH, NODE_NAME: node, NAMESPACE: 'kubeedge' }, stdio: ['ignore', 'ignore', 'pipe'] })
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => logs.push(d))
    let status: Record<string, unknown> | undefined
    try {
      await eventually('the block in /status', async () => {
        status = (await fetch(`http://127.0.0.1:${statusPort}/status`).then(async x => await x.json() as { cni?: Record<string, unknown> }, () => undefined))?.cni
        return status?.block !== undefined
      }, 15_000, 100)
    } finally {
      proc.kill('SIGTERM')
      await once(proc, 'exit')
    }
    assert.ok(!logs.join('').includes('"level":"error"'), logs.join(''))
    return status
  }

  test('edgemesh agent with edgeCNI on an edge node claims from edgeCIDR, shows the block in /status and writes the plugin\'s subnetFile', async () => {
    await cp.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-agent', labels: { 'node-role.kubernetes.io/edge': '' } } })
    assert.deepEqual(await agentBlock('edge-agent'), { block: '10.200.0.0/24', side: 'edge', source: 'claimed' })
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'edge-agent-state', 'cni-block.json'), 'utf8')), { node: 'edge-agent', block: '10.200.0.0/24' })
  })

  test('edgemesh agent on a cloud node whose spec.podCIDR is in cloudCIDR holds that block', async () => {
    await cp.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'cloud-agent' }, spec: { podCIDR: '10.100.7.0/24', podCIDRs: ['10.100.7.0/24'] } } as never)
    assert.deepEqual(await agentBlock('cloud-agent'), { block: '10.100.7.0/24', side: 'cloud', source: 'podCIDR' })
  })
})
