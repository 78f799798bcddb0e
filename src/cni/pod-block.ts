/**
 * The agent's part of the edge CNI for now: it claims this node's pod block
 * (blocks.ts) from `meshCIDRConfig`: `edgeCIDR` on edge nodes (KubeEdge's
 * `node-role.kubernetes.io/edge` label), `cloudCIDR` elsewhere. The claim
 * runs beside the agent's start and is tried again until it succeeds; the
 * block file it writes is the CNI plugin's `subnetFile`.
 */
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { BlockClaims } from './blocks.ts'

export interface PodBlockStatus { block?: string, side?: 'edge' | 'cloud', error?: string }

export interface PodBlockDeps {
  logger: Logger
  /** The node's labels; null when there is no such Node. */
  nodeLabels: () => Promise<Record<string, string> | null>
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

  async #attempt (): Promise<void> {
    try {
      const labels = await this.#deps.nodeLabels()
      const side = labels?.['node-role.kubernetes.io/edge'] !== undefined ? 'edge' : 'cloud'
      const cidrs = side === 'edge' ? this.#init.edgeCIDR : this.#init.cloudCIDR
      if (cidrs.length === 0) {
        this.#status = { side, error: `meshCIDRConfig.${side}CIDR is empty: no pod block to claim on this ${side} node` }
        this.#deps.logger.warn('no pod block claimed', { reason: this.#status.error })
        return
      }
      const block = await this.#deps.claimsFor(cidrs).claim()
      this.#status = { block, side }
      this.#deps.logger.info('pod block', { block, side })
    } catch (err) {
      this.#status = { ...this.#status, error: (err as Error).message }
      this.#deps.logger.warn('pod block not claimed; trying again', { err, inMs: this.#init.retryMs })
      if (this.#stopped) return
      this.#timer = setTimeout(() => { this.#running = this.#attempt() }, this.#init.retryMs)
      this.#timer.unref()
    }
  }
}
