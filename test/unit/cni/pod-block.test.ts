// Which block a node holds: its spec.podCIDR when that lies in its side's
// mesh CIDRs (the cloud's CNI uses it), else one claimed from those CIDRs;
// and which blocks the routing plane hands the kernel: every other node's,
// except those a cluster CNI routes (the cloud side, on such a cloud node).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PodBlock } from '../../../src/cni/pod-block.ts'
import type { NodeFacts, PodBlockStatus } from '../../../src/cni/pod-block.ts'
import type { BlockClaims } from '../../../src/cni/blocks.ts'
import { routedBlocks } from '../../../src/cni/router.ts'
import { noopLogger } from '../../../src/observability/logger.ts'

const MESH = { cloudCIDR: ['10.244.0.0/18'], edgeCIDR: ['10.244.64.0/18'] }

/** The block a PodBlock settles on for a node with `facts`, and the claim calls it made. */
async function settle (facts: NodeFacts | null): Promise<{ status: PodBlockStatus, calls: string[] }> {
  const calls: string[] = []
  const claims = (cidrs: readonly string[]): BlockClaims => ({
    claim: async () => { calls.push(`claim ${cidrs.join(',')}`); return cidrs[0]?.replace(/\d+\.0\/18$/, m => `${m.split('.')[0] as string}.0/24`) ?? '' },
    claimExact: async (block: string) => { calls.push(`exact ${block}`); return block }
  }) as unknown as BlockClaims
  const pb = new PodBlock({ logger: noopLogger, nodeFacts: async () => facts, claimsFor: claims }, MESH)
  const resolved = new Promise<PodBlockStatus>(resolve => { pb.onBlock(resolve) })
  await pb.start()
  const status = await resolved
  await pb.stop()
  return { status, calls }
}

test('a cloud node whose spec.podCIDR is in cloudCIDR holds that block as it is', async () => {
  const { status, calls } = await settle({ labels: {}, podCIDRs: ['10.244.3.0/24', 'fd00::/64'] })
  assert.deepEqual(status, { block: '10.244.3.0/24', side: 'cloud', source: 'podCIDR' })
  assert.deepEqual(calls, ['exact 10.244.3.0/24'])
})

test('an edge node whose spec.podCIDR is outside edgeCIDR (the cluster CIDR, unused on the edge) claims a block from edgeCIDR', async () => {
  const { status, calls } = await settle({ labels: { 'node-role.kubernetes.io/edge': '' }, podCIDRs: ['10.244.3.0/24'] })
  assert.equal(status.side, 'edge')
  assert.equal(status.source, 'claimed')
  assert.deepEqual(calls, ['claim 10.244.64.0/18'])
})

test('a node with no spec.podCIDR claims from its side', async () => {
  assert.deepEqual((await settle({ labels: {}, podCIDRs: [] })).calls, ['claim 10.244.0.0/18'])
  assert.deepEqual((await settle(null)).calls, ['claim 10.244.0.0/18'], 'no Node object: the cloud side')
})

test('routed blocks: every other node\'s, not our own, not those left to a cluster CNI, none that is not a block', () => {
  const owners = [
    { block: '10.244.0.0/24', nodeName: 'cloud-1' },
    { block: '10.244.1.0/24', nodeName: 'cloud-2' },
    { block: '10.244.64.0/24', nodeName: 'edge-1' },
    { block: '10.244.65.0/24', nodeName: 'edge-2' },
    { block: 'garbage', nodeName: 'edge-3' }
  ]
  assert.deepEqual([...routedBlocks(owners, 'edge-1', [])].sort(), ['10.244.0.0/24', '10.244.1.0/24', '10.244.65.0/24'])
  assert.deepEqual([...routedBlocks(owners, 'cloud-1', MESH.cloudCIDR)].sort(), ['10.244.64.0/24', '10.244.65.0/24'])
})
