/**
 * The edge CNI as the composition root builds it: this node's pod block
 * (claimed through the API's Leases), and the routing plane that carries pod
 * packets to the nodes holding the other blocks, on the mesh's channels.
 */
import { join } from 'node:path'
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { Registry } from 'prom-client'
import type { AgentConfig } from '../config/schema.ts'
import type { NodeIdentity } from '../config/node-identity.ts'
import { KubeInformer } from '../kube/index.ts'
import type { KubeClient, KubeMetrics, KubeObject } from '../kube/index.ts'
import type { PeerChannels } from '../mesh/index.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import { BLOCK_LABEL, BlockClaims, compactClaim, informerBlockTable, LEASES } from '../cni/blocks.ts'
import type { LeaseApi } from '../cni/blocks.ts'
import { PodBlock } from '../cni/pod-block.ts'
import type { NodeFacts, PodBlockStatus } from '../cni/pod-block.ts'
import { PodRouter } from '../cni/router.ts'
import type { PeerTraffic } from '../cni/router.ts'

export interface PodNetwork {
  components: Component[]
  status: () => PodBlockStatus & { routes?: string[], peers?: PeerTraffic[] }
}

/** What the edge CNI takes from the rest of the agent; absent parts leave it off with a warning that says why. */
export interface PodNetworkDeps {
  logger: Logger
  metrics: Registry
  leases?: LeaseApi | undefined
  nodeFacts?: ((nodeName: string) => Promise<NodeFacts | null>) | undefined
  kube?: { client: KubeClient, metrics: KubeMetrics } | undefined
  channels?: PeerChannels | undefined
  /** Counts buffers read (see src/net/buffer-reclaimer.ts). */
  copied?: CopiedStreams | undefined
}

/** The mesh's pod CIDRs (cloud and edge), none when the edge CNI is off: never a node's own address. */
export function podCidrs (config: AgentConfig): string[] {
  const c = config.modules.edgeCNI
  return c.enable ? [...c.meshCIDRConfig.cloudCIDR, ...c.meshCIDRConfig.edgeCIDR] : []
}

export function createPodNetwork (config: AgentConfig, node: NodeIdentity, deps: PodNetworkDeps): PodNetwork | undefined {
  const log = deps.logger.forComponent('cni')
  const { leases, nodeFacts, kube } = deps
  if (leases === undefined || nodeFacts === undefined || kube === undefined) {
    log.warn('edge CNI: pod blocks are claimed through the Kubernetes API (Leases); a standalone file has none, so no block is claimed')
    return undefined
  }
  const stateFile = join(config.commonConfig.stateDir, 'cni-block.json')
  const podBlock = new PodBlock({
    logger: log,
    nodeFacts: async () => await nodeFacts(node.nodeName),
    claimsFor: cidrs => new BlockClaims({ api: leases, logger: log }, { nodeName: node.nodeName, cidrs, namespace: node.namespace, stateFile })
  }, config.modules.edgeCNI.meshCIDRConfig)
  if (deps.channels === undefined) {
    log.warn('edge CNI: pod packets travel between agents on the tunnel\'s data path (modules.edgeTunnel with psk and dataPath enabled); without it only this node\'s pods are served')
    return { components: [podBlock], status: () => podBlock.status() }
  }
  // Every node's claim, watched: the routing plane looks blocks up in memory, never per packet.
  const claims = new KubeInformer<KubeObject>({ resource: LEASES, namespace: node.namespace, labelSelector: `${BLOCK_LABEL}=true`, transform: compactClaim },
    { client: kube.client, logger: deps.logger.forComponent('kube:leases'), metrics: kube.metrics })
  const mesh = config.modules.edgeCNI.meshCIDRConfig
  const router = new PodRouter({ logger: log, metrics: deps.metrics, channels: deps.channels, copied: deps.copied, blocks: informerBlockTable(claims, join(config.commonConfig.stateDir, 'cni-routes.json')) },
    { nodeName: node.nodeName, meshCidrs: podCidrs(config) })
  podBlock.onBlock(({ block, side, source }) => {
    // A cloud node whose block is its spec.podCIDR has a cluster CNI that routes between cloud nodes: the device takes only the edge's blocks.
    if (side === 'cloud' && source === 'podCIDR') router.leaveToClusterCni(mesh.cloudCIDR)
    // Pods addressed from a block we claimed have no CNI of their own to masquerade them.
    if (block !== undefined) router.ownBlock(block, { masquerade: source === 'claimed' })
  })
  return {
    components: [podBlock, claims, router],
    status: () => ({ ...podBlock.status(), routes: router.routes(), peers: router.peers() })
  }
}
