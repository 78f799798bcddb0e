/**
 * Gateway API status written back, so `kubectl get gateway,httproute` says
 * what the gateway made of each object: GatewayClass Accepted; Gateway
 * Accepted and Programmed with each listener's conditions and attached
 * routes; each route's Accepted and ResolvedRefs under our controllerName
 * (entries of other controllers are kept). An object is patched only when
 * what it shows differs; `lastTransitionTime` moves only when a condition's
 * status does. Writes are serialized and carry the object's resourceVersion,
 * so a write over a newer object is refused (409) and redone from it.
 */
import type { KubeObject, ResourceType } from '../kube/types.ts'
import { KubeRequestError } from '../kube/errors.ts'
import type { Logger } from '../observability/logger.ts'
import { WarnSummary } from '../observability/warn-summary.ts'
import { CONTROLLER_NAME, GROUP } from './gateway-api.ts'
import type { Condition, GatewayApiModel, RouteKind } from './gateway-api.ts'
import type { Json } from './fields.ts'

export const GATEWAY_API_RESOURCES = {
  gatewayClasses: { group: GROUP, version: 'v1', resource: 'gatewayclasses', kind: 'GatewayClass', namespaced: false },
  gateways: { group: GROUP, version: 'v1', resource: 'gateways', kind: 'Gateway', namespaced: true },
  httpRoutes: { group: GROUP, version: 'v1', resource: 'httproutes', kind: 'HTTPRoute', namespaced: true },
  grpcRoutes: { group: GROUP, version: 'v1', resource: 'grpcroutes', kind: 'GRPCRoute', namespaced: true },
  tlsRoutes: { group: GROUP, version: 'v1', resource: 'tlsroutes', kind: 'TLSRoute', namespaced: true },
  tcpRoutes: { group: GROUP, version: 'v1', resource: 'tcproutes', kind: 'TCPRoute', namespaced: true },
  referenceGrants: { group: GROUP, version: 'v1beta1', resource: 'referencegrants', kind: 'ReferenceGrant', namespaced: true }
} as const satisfies Record<string, ResourceType>

const ROUTE_RESOURCES: Record<RouteKind, ResourceType> = {
  HTTPRoute: GATEWAY_API_RESOURCES.httpRoutes,
  GRPCRoute: GATEWAY_API_RESOURCES.grpcRoutes,
  TLSRoute: GATEWAY_API_RESOURCES.tlsRoutes,
  TCPRoute: GATEWAY_API_RESOURCES.tcpRoutes
}

/** What the gateway's listeners did with the model: per listener key, why it is not serving, if it is not. */
export interface Runtime {
  notProgrammed: (listenerKey: string, port: number) => string | undefined
  addresses: readonly string[]
}

/** The one write the status needs: a merge patch of the `status` subresource. */
export type PatchStatus = (resource: ResourceType, namespace: string | undefined, name: string, patch: unknown) => Promise<unknown>

interface StatusCondition extends Condition {
  lastTransitionTime: string
  observedGeneration?: number
}

interface Write { resource: ResourceType, object: KubeObject, status: Json, key: string }

/** A write refused for a newer object is redone soon (the informer has it by then); other failures later. */
const CONFLICT_RETRY_MS = 250
const FAILURE_RETRY_MS = 2000

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z')

/** Conditions with the transition times they already had when their status did not change. */
function stamped (conditions: readonly Condition[], previous: unknown, generation: number | undefined): StatusCondition[] {
  const before = Array.isArray(previous) ? previous as StatusCondition[] : []
  return conditions.map(c => {
    const old = before.find(b => b.type === c.type)
    return { ...c, lastTransitionTime: old !== undefined && old.status === c.status && typeof old.lastTransitionTime === 'string' ? old.lastTransitionTime : now(), ...(generation !== undefined ? { observedGeneration: generation } : {}) }
  })
}

/** Compares what users see, not when it last changed. */
function sameStatus (a: unknown, b: unknown): boolean {
  return JSON.stringify(a, (k, v: unknown) => k === 'lastTransitionTime' ? undefined : v) === JSON.stringify(b, (k, v: unknown) => k === 'lastTransitionTime' ? undefined : v)
}

function statusOf (o: KubeObject): Json {
  return ((o as unknown as Json).status ?? {}) as Json
}

/** The status each object should show, given the model and what the listeners did. */
export function desiredStatus (model: GatewayApiModel, runtime: Runtime): Write[] {
  const writes: Write[] = []
  for (const c of model.classes) {
    const gen = c.metadata.generation
    const status = { conditions: stamped([{ type: 'Accepted', status: 'True', reason: 'Accepted', message: `handled by ${CONTROLLER_NAME}` }], statusOf(c).conditions, gen) }
    writes.push({ resource: GATEWAY_API_RESOURCES.gatewayClasses, object: c, status, key: `GatewayClass ${c.metadata.name}` })
  }
  for (const g of model.gatewayStatus) {
    const gen = g.object.metadata.generation
    const prev = statusOf(g.object)
    const prevListeners = Array.isArray(prev.listeners) ? prev.listeners as Json[] : []
    let programmed = 0
    const listeners = g.listeners.map(l => {
      let conditions = l.conditions
      if (l.key !== undefined) {
        const why = runtime.notProgrammed(l.key, l.port)
        if (why === undefined) programmed++
        conditions = [...conditions, why === undefined
          ? { type: 'Programmed', status: 'True', reason: 'Programmed', message: `serving on port ${l.port}` }
          : { type: 'Programmed', status: 'False', reason: 'Invalid', message: why }]
      }
      return { name: l.name, supportedKinds: l.supportedKinds, attachedRoutes: l.attachedRoutes, conditions: stamped(conditions, prevListeners.find(p => p.name === l.name)?.conditions, gen) }
    })
    const accepted = g.conditions.find(c => c.type === 'Accepted')
    const conditions: Condition[] = [...g.conditions.filter(c => c.type !== 'Programmed')]
    if (accepted?.status === 'True') {
      conditions.push(programmed > 0
        ? { type: 'Programmed', status: 'True', reason: 'Programmed', message: `${programmed} of ${listeners.length} listeners serving` }
        : { type: 'Programmed', status: 'False', reason: 'Invalid', message: 'no listener is serving' })
    } else {
      conditions.push(g.conditions.find(c => c.type === 'Programmed') ?? { type: 'Programmed', status: 'False', reason: 'Invalid', message: 'the Gateway is not accepted' })
    }
    const status = {
      addresses: runtime.addresses.map(value => ({ type: 'IPAddress', value })),
      conditions: stamped(conditions, prev.conditions, gen),
      listeners
    }
    writes.push({ resource: GATEWAY_API_RESOURCES.gateways, object: g.object, status, key: `Gateway ${g.object.metadata.namespace ?? ''}/${g.object.metadata.name}` })
  }
  for (const [key, r] of model.routeStatus) {
    const gen = r.object.metadata.generation
    const prevParents = Array.isArray(statusOf(r.object).parents) ? statusOf(r.object).parents as Json[] : []
    const others = prevParents.filter(p => p.controllerName !== CONTROLLER_NAME)
    const ours = r.parents.map(p => {
      const old = prevParents.find(x => x.controllerName === CONTROLLER_NAME && sameStatus(x.parentRef, p.parentRef))
      return { parentRef: p.parentRef, controllerName: CONTROLLER_NAME, conditions: stamped(p.conditions, old?.conditions, gen) }
    })
    // Nothing of ours to show and nothing of ours to clear: not our route.
    if (ours.length === 0 && others.length === prevParents.length) continue
    writes.push({ resource: ROUTE_RESOURCES[r.kind], object: r.object, status: { parents: [...others, ...ours] }, key })
  }
  return writes
}

/** Writes the desired status of each object that shows something else, one write at a time. */
export class GatewayApiStatusWriter {
  readonly #patch: PatchStatus
  readonly #log: Logger
  readonly #failures: WarnSummary
  #pending: Write[] | undefined
  #running: Promise<void> | undefined
  #retry: NodeJS.Timeout | undefined
  #closed = false
  /** Called when a write failed: the caller publishes again (a retry sees the newest objects). */
  onRetry: () => void = () => {}

  constructor (patch: PatchStatus, logger: Logger) {
    this.#patch = patch
    this.#log = logger
    this.#failures = new WarnSummary(logger, 'gateway status not written; retrying')
  }

  /** Replaces what is still to be written by the newest desired status. */
  publish (writes: Write[]): void {
    if (this.#closed) return
    this.#pending = writes.filter(w => !sameStatus(statusOf(w.object), { ...statusOf(w.object), ...w.status }))
    this.#running ??= this.#drain().finally(() => { this.#running = undefined })
  }

  /** Writes again after close() (a restarted gateway). */
  open (): void {
    this.#closed = false
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#pending = undefined
    clearTimeout(this.#retry)
    await this.#running
    this.#failures.flush()
  }

  async #drain (): Promise<void> {
    let retryMs: number | undefined
    while (this.#pending !== undefined && this.#pending.length > 0) {
      const w = this.#pending.shift() as Write
      try {
        await this.#patch(w.resource, w.object.metadata.namespace, w.object.metadata.name, { metadata: { resourceVersion: w.object.metadata.resourceVersion }, status: w.status })
        this.#log.debug('gateway status written', { object: w.key })
      } catch (err) {
        if (err instanceof KubeRequestError && err.status === 409) {
          // Written over a newer object (often our own previous write, not yet seen by the informer): redone from the newer one.
          this.#log.debug('gateway status write conflicted; redone from the newer object', { object: w.key })
          retryMs = Math.min(retryMs ?? CONFLICT_RETRY_MS, CONFLICT_RETRY_MS)
        } else {
          this.#failures.record(`${w.key}: ${(err as Error).message}`)
          retryMs = Math.min(retryMs ?? FAILURE_RETRY_MS, FAILURE_RETRY_MS)
        }
      }
    }
    if (retryMs !== undefined && !this.#closed) {
      clearTimeout(this.#retry)
      this.#retry = setTimeout(() => this.onRetry(), retryMs)
      this.#retry.unref()
    }
  }
}
