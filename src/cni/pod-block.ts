/**
 * This node's pod block (blocks.ts), by side: `meshCIDRConfig.edgeCIDR` on
 * edge nodes (KubeEdge's `node-role.kubernetes.io/edge` label), `cloudCIDR`
 * elsewhere. A node whose `spec.podCIDR` lies in its side's CIDRs (given by
 * kube-controller-manager, used by the cloud's own CNI) holds that block: it
 * is claimed as it is, and the routing plane leaves the side's traffic to
 * that CNI. Otherwise a free block is claimed. The claim runs beside the
 * agent's start and is tried again until it succeeds; the block file it
 * writes is the CNI plugin's `subnetFile`.
 */
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { BlockClaims } from './blocks.ts'
import { cidrWithin } from '../net/ipv4.ts'

export interface PodBlockStatus {
  block?: string
  side?: 'edge' | 'cloud'
  /** Where the block came from: the Node's `spec.podCIDR`, or claimed from the side's CIDRs. */
  source?: 'podCIDR' | 'claimed'
  error?: string
}

/** What the claim needs of the Node object. */
export interface NodeFacts { labels: Record<string, string>, podCIDRs: readonly string[] }

export interface PodBlockDeps {
  logger: Logger
  /** The node's labels and pod CIDRs; null when there is no such Node. */
  nodeFacts: () => Promise<NodeFacts | null>
  claimsFor: (cidrs: readonly string[]) => BlockClaims
}

export class PodBlock implements Component {
  readonly name = 'cni'
  readonly #deps: PodBlockDeps
  readonly #init: { edgeCIDR: readonly string[], cloudCIDR: readonly string[], retryMs: number }
  #status: PodBlockStatus = {}
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #stopped = true
  readonly #listeners: Array<(status: PodBlockStatus) => void> = []

  constructor (deps: PodBlockDeps, init: { edgeCIDR: readonly string[], cloudCIDR: readonly string[], retryMs?: number }) {
    this.#deps = deps
    this.#init = { retryMs: 10_000, ...init }
  }

  async start (): Promise<void> {
    if (!this.#stopped) return
    this.#stopped = false
    this.#running = this.#attempt()
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
  }

  status (): PodBlockStatus {
    return this.#status
  }

  /** Called once the block is known. */
  onBlock (listener: (status: PodBlockStatus) => void): void {
    this.#listeners.push(listener)
  }

  async #attempt (): Promise<void> {
    try {
      const facts = await this.#deps.nodeFacts()
      const side = facts?.labels['node-role.kubernetes.io/edge'] !== undefined ? 'edge' : 'cloud'
      const cidrs = side === 'edge' ? this.#init.edgeCIDR : this.#init.cloudCIDR
      const own = facts?.podCIDRs.find(c => cidrs.some(range => cidrWithin(c, range)))
      if (own !== undefined) {
        const block = await this.#deps.claimsFor(cidrs).claimExact(own)
        this.#resolved({ block, side, source: 'podCIDR' })
        return
      }
      if (cidrs.length === 0) {
        this.#status = { side, error: `meshCIDRConfig.${side}CIDR is empty: no pod block to claim on this ${side} node` }
        this.#deps.logger.warn('no pod block claimed', { reason: this.#status.error })
        return
      }
      const ignored = facts?.podCIDRs.filter(c => c.includes('.')) ?? []
      if (ignored.length > 0) this.#deps.logger.info(`the node's spec.podCIDR is outside meshCIDRConfig.${side}CIDR: a block is claimed from that instead`, { podCIDRs: ignored, cidrs })
      const block = await this.#deps.claimsFor(cidrs).claim()
      this.#resolved({ block, side, source: 'claimed' })
    } catch (err) {
      this.#status = { ...this.#status, error: (err as Error).message }
      this.#deps.logger.warn('pod block not claimed; trying again', { err, inMs: this.#init.retryMs })
      if (this.#stopped) return
      this.#timer = setTimeout(() => { this.#running = this.#attempt() }, this.#init.retryMs)
      this.#timer.unref()
    }
  }

  #resolved (status: PodBlockStatus): void {
    this.#status = status
    this.#deps.logger.info('pod block', { ...status })
    for (const l of this.#listeners) l(status)
  }
}
