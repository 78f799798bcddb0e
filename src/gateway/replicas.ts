/**
 * Several gateways serving the same Gateways (one per node, each its own
 * chart release): each writes Gateway API status, and each used to write its
 * own listen addresses there, so `status.addresses` changed with every
 * write. Now each replica keeps a Lease of its own in its namespace with its
 * addresses, renews it, and every replica writes the union of the live
 * Leases' addresses: they write the same status. A replica that stops
 * deletes its Lease; one that dies drops out when its Lease expires.
 */
import { createHash } from 'node:crypto'
import { isIP } from 'node:net'
import type { Component, StopOptions } from '../lifecycle/component.ts'
import type { Informer, KubeObject } from '../kube/index.ts'
import type { Logger } from '../observability/logger.ts'
import { byCodeUnits } from '../order.ts'

/** Label of the replicas' Leases (the informer selects on it). */
export const REPLICA_LABEL = 'edgemesh.kubeedge.io/gateway-replica'
/** Annotation holding a replica's listen addresses, comma-separated. */
export const ADDRESSES_ANNOTATION = 'edgemesh.kubeedge.io/addresses'
/** Addresses read from one Lease at most: anyone who may write Leases there could put anything in it. */
const MAX_ADDRESSES = 64

/** What of the Lease API the replicas use. */
export interface ReplicaLeaseApi {
  create: (namespace: string, lease: KubeObject) => Promise<unknown>
  /** A JSON merge patch; rejects with KubeNotFoundError when the Lease is gone. */
  patch: (namespace: string, name: string, patch: unknown) => Promise<unknown>
  /** Resolves when the Lease is gone, also when it already was. */
  delete: (namespace: string, name: string) => Promise<void>
}

export interface GatewayReplicasInit {
  namespace: string
  /** This gateway's node name (`NODE_NAME`). */
  nodeName: string
  /** This gateway's listen addresses. */
  addresses: readonly string[]
  /** @default 30 */
  leaseDurationSeconds?: number
  /** @default 10000 */
  renewEveryMs?: number
  now?: () => number
}

export interface GatewayReplicasDeps {
  api: ReplicaLeaseApi
  /** The Leases with REPLICA_LABEL in `namespace`; started and stopped with this component. */
  leases: Informer<KubeObject>
  logger: Logger
  /** Called when the union of the live replicas' addresses changed. */
  onChange: () => void
}

/** The Lease name of a node's gateway: `edgemesh-gateway.<node>`, hashed when too long for a name. */
export function replicaLeaseName (nodeName: string): string {
  const name = `edgemesh-gateway.${nodeName}`
  return name.length <= 253 ? name : `edgemesh-gateway.${createHash('sha256').update(nodeName).digest('hex').slice(0, 32)}`
}

/** Kubernetes' MicroTime: RFC 3339 with microseconds. */
function microTime (ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z')
}

/** A Lease's addresses while it is live (renewed within its duration), else undefined. */
export function liveAddresses (lease: KubeObject, now: number): string[] | undefined {
  const l = lease as KubeObject & { spec?: { renewTime?: unknown, leaseDurationSeconds?: unknown } }
  const renewed = typeof l.spec?.renewTime === 'string' ? Date.parse(l.spec.renewTime) : NaN
  const duration = typeof l.spec?.leaseDurationSeconds === 'number' ? l.spec.leaseDurationSeconds : NaN
  if (!(renewed + duration * 1000 > now)) return undefined
  const raw = lease.metadata.annotations?.[ADDRESSES_ANNOTATION] ?? ''
  return raw.split(',').map(a => a.trim()).filter(a => isIP(a) !== 0).slice(0, MAX_ADDRESSES)
}

export class GatewayReplicas implements Component {
  readonly name = 'gateway-replicas'
  readonly #init: Required<GatewayReplicasInit>
  readonly #deps: GatewayReplicasDeps
  readonly #lease: string
  #renew: NodeJS.Timeout | undefined
  #expiry: NodeJS.Timeout | undefined
  #union: string[]
  #started = false
  #handlers = false

  constructor (init: GatewayReplicasInit, deps: GatewayReplicasDeps) {
    this.#init = { leaseDurationSeconds: 30, renewEveryMs: 10_000, now: Date.now, ...init }
    this.#deps = deps
    this.#lease = replicaLeaseName(init.nodeName)
    this.#union = [...init.addresses].sort(byCodeUnits)
  }

  /** Every live replica's addresses, this one's included, sorted. */
  addresses (): readonly string[] {
    return this.#union
  }

  /** Starts the Leases' informer too (it is this component's own). */
  async start (): Promise<void> {
    if (this.#started) return
    const { leases, logger } = this.#deps
    if (!this.#handlers) {
      this.#handlers = true
      const changed = (): void => this.#recompute()
      leases.addHandlers({ onAdd: changed, onUpdate: changed, onDelete: changed })
    }
    try {
      await leases.start()
    } catch (err) {
      // An older ClusterRole without Leases: serve on, as a single replica would.
      if ((err as { code?: string }).code !== 'EM_ERR_KUBE_FORBIDDEN') throw err
      logger.warn('gateway replicas not shared: Leases in the gateway\'s namespace may not be read (the chart\'s Role grants it); Gateway status names only this gateway\'s addresses', { namespace: this.#init.namespace, err })
      return
    }
    this.#started = true
    await this.#publish()
    this.#renew = setInterval(() => { this.#publish().catch(() => {}) }, this.#init.renewEveryMs)
    this.#renew.unref()
    this.#recompute()
  }

  async stop (options?: StopOptions): Promise<void> {
    if (!this.#started) return
    this.#started = false
    clearInterval(this.#renew)
    clearTimeout(this.#expiry)
    // The others drop this replica's addresses at once instead of after the Lease's duration.
    await this.#deps.api.delete(this.#init.namespace, this.#lease).catch((err: unknown) => {
      this.#deps.logger.warn('gateway replica lease not deleted', { lease: `${this.#init.namespace}/${this.#lease}`, err })
    })
    await this.#deps.leases.stop(options)
  }

  /** Renews this replica's Lease, creating it when it is missing. */
  async #publish (): Promise<void> {
    const { namespace, nodeName, addresses, leaseDurationSeconds } = this.#init
    const now = microTime(this.#init.now())
    const annotations = { [ADDRESSES_ANNOTATION]: addresses.join(',') }
    try {
      await this.#deps.api.patch(namespace, this.#lease, { metadata: { annotations }, spec: { holderIdentity: `${nodeName}-gateway`, renewTime: now, leaseDurationSeconds } })
    } catch (err) {
      if ((err as { code?: string }).code !== 'EM_ERR_KUBE_NOT_FOUND') {
        this.#deps.logger.warn('gateway replica lease not renewed', { lease: `${namespace}/${this.#lease}`, err })
        return
      }
      await this.#deps.api.create(namespace, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.#lease, namespace, labels: { [REPLICA_LABEL]: 'true' }, annotations },
        spec: { holderIdentity: `${nodeName}-gateway`, acquireTime: now, renewTime: now, leaseDurationSeconds }
      } as KubeObject).catch((e: unknown) => {
        this.#deps.logger.warn('gateway replica lease not created', { lease: `${namespace}/${this.#lease}`, err: e })
      })
    }
  }

  /** The union of the live Leases' addresses; calls onChange when it moved, and comes back when the next Lease expires. */
  #recompute (): void {
    if (!this.#started) return
    const now = this.#init.now()
    const all = new Set(this.#init.addresses)
    let nextExpiry = Infinity
    for (const lease of this.#deps.leases.list()) {
      if (lease.metadata.name === this.#lease) continue
      const live = liveAddresses(lease, now)
      if (live === undefined) continue
      for (const a of live) all.add(a)
      const spec = (lease as KubeObject & { spec: { renewTime: string, leaseDurationSeconds: number } }).spec
      nextExpiry = Math.min(nextExpiry, Date.parse(spec.renewTime) + spec.leaseDurationSeconds * 1000)
    }
    clearTimeout(this.#expiry)
    if (nextExpiry !== Infinity) {
      this.#expiry = setTimeout(() => this.#recompute(), Math.max(0, nextExpiry - now) + 50)
      this.#expiry.unref()
    }
    const union = [...all].sort(byCodeUnits)
    if (union.join(',') === this.#union.join(',')) return
    this.#union = union
    this.#deps.logger.info('gateway replicas\' addresses', { addresses: union })
    this.#deps.onChange()
  }
}
