import { ConsistentHashPolicy, DEFAULT_RING_CONFIG } from './consistent-hash.ts'
import type { RingConfig } from './consistent-hash.ts'
import { policyForPort, specNeedsHttp } from './destination-rule.ts'
import type { DestinationRule, LbPolicySpec } from './destination-rule.ts'
import { endpointKey, targetPort } from './policy.ts'
import type { Clock, LbPolicy, PickContext, RandomSource } from './policy.ts'
import { RandomPolicy } from './random.ts'
import { RoundRobinPolicy } from './round-robin.ts'
import { DEFAULT_AFFINITY_TIMEOUT_SECONDS, SessionAffinityPolicy } from './session-affinity.ts'
import type { Endpoint, ServiceChange, ServiceInfo, ServiceKey } from '../servicemap/types.ts'

/** Connection attempts per client connection, first pick included (upstream makes 4, with sleeps in between). */
export const DEFAULT_MAX_ATTEMPTS = 3

/** One port of one Service: the unit that owns a policy. */
export interface ServicePortKey {
  /** `namespace/name`. */
  service: ServiceKey
  /** The Service port number (what `portLevelSettings` match). */
  port: number
  /** The Service port name ('' for a single unnamed port): selects each endpoint's target port. */
  portName: string
}

/** Which policy applies to a service port, and why. */
export interface EffectivePolicy {
  spec: LbPolicySpec | { type: 'CLIENT_IP', timeoutSeconds: number }
  source: 'default' | 'destinationRule' | 'sessionAffinity'
  /** `namespace/name` of the DestinationRule that applies (or is overridden by session affinity). */
  rule?: string
  /** True when the Service's `sessionAffinity: ClientIP` overrides a DestinationRule (upstream warns "policy conflicted"). */
  conflict: boolean
}

export interface LoadBalancerInit {
  /** `modules.edgeProxy.loadBalancer.consistentHash`. @default { partitionCount: 100, replicationFactor: 10, load: 1.25 } */
  ring?: Readonly<RingConfig>
  /** @default Math.random */
  random?: RandomSource
  /** Milliseconds, for session affinity. @default performance.now */
  now?: Clock
  /** Also bind a DestinationRule to the Service with its own namespace/name, as upstream does. @default true */
  matchByName?: boolean
  /** `useSourceIp` hashes `ip:port` as upstream does (per connection) instead of the client IP. @default false */
  sourceIpWithPort?: boolean
  /** See ConsistentHashInit.missingKey. @default 'fallback' */
  missingKey?: 'fallback' | 'hash-empty'
}

interface PortState {
  signature: string
  policy: LbPolicy
  portName: string
  lastInput: readonly Endpoint[] | undefined
  candidates: readonly Endpoint[]
}

/**
 * Holds the policy and its state for every service port, and picks
 * endpoints for new connections. Pure and synchronous: the proxy feeds it
 * service-map changes and DestinationRules, and asks it for picks.
 *
 * Policy precedence per service port: Service `sessionAffinity: ClientIP`
 * (round robin for new clients) over a DestinationRule (port-level setting,
 * then rule-level) over round robin. A DestinationRule binds to a Service by
 * `spec.host` (Istio) and, unless a host-bound rule exists for that Service,
 * by its own namespace/name (upstream). When several rules bind by host, the
 * one with the smallest `namespace/name` wins.
 *
 * A policy change replaces the port's policy state for *new* picks only; the
 * balancer holds no connections, so open ones are untouched.
 */
/**
 * The picks of `LoadBalancer.attempts`. An iterator of its own, not a
 * generator: most connections take the first pick and never ask again, and a
 * generator per connection (two, with the gateway's around it) took 6 % of a
 * gateway request's CPU in a profile. The set of tried endpoints is made only
 * for a second pick.
 */
class Attempts implements IterableIterator<Endpoint> {
  readonly #lb: LoadBalancer
  readonly #svc: ServicePortKey
  readonly #endpoints: readonly Endpoint[]
  readonly #ctx: PickContext
  readonly #max: number
  #picked = 0
  #last: Endpoint | undefined
  #tried: Set<string> | undefined
  #done = false

  constructor (lb: LoadBalancer, svc: ServicePortKey, endpoints: readonly Endpoint[], ctx: PickContext, max: number) {
    this.#lb = lb
    this.#svc = svc
    this.#endpoints = endpoints
    this.#ctx = ctx
    this.#max = max
  }

  next (): IteratorResult<Endpoint, undefined> {
    if (this.#done || this.#picked >= this.#max) return this.#end()
    let ctx = this.#ctx
    if (this.#last !== undefined) {
      this.#tried ??= new Set(ctx.exclude ?? [])
      this.#tried.add(endpointKey(this.#last, this.#svc.portName))
      ctx = { ...ctx, exclude: this.#tried }
    }
    const ep = this.#lb.pick(this.#svc, this.#endpoints, ctx)
    if (ep === undefined) return this.#end()
    this.#picked++
    this.#last = ep
    return { done: false, value: ep }
  }

  #end (): IteratorResult<Endpoint, undefined> {
    this.#done = true
    return { done: true, value: undefined }
  }

  [Symbol.iterator] (): this {
    return this
  }
}

export class LoadBalancer {
  readonly #ring: Readonly<RingConfig>
  readonly #random: RandomSource
  readonly #now: Clock
  readonly #matchByName: boolean
  readonly #sourceIpWithPort: boolean
  readonly #missingKey: 'fallback' | 'hash-empty'
  readonly #services = new Map<ServiceKey, ServiceInfo>()
  readonly #rules = new Map<string, DestinationRule>()
  readonly #byHost = new Map<ServiceKey, Set<string>>()
  readonly #states = new Map<ServiceKey, Map<number, PortState>>()

  constructor (init: LoadBalancerInit = {}) {
    this.#ring = init.ring ?? DEFAULT_RING_CONFIG
    this.#random = init.random ?? Math.random
    this.#now = init.now ?? (() => performance.now())
    this.#matchByName = init.matchByName ?? true
    this.#sourceIpWithPort = init.sourceIpWithPort ?? false
    this.#missingKey = init.missingKey ?? 'fallback'
  }

  /** The ring parameters consistent-hash policies are built with (`loadBalancer.consistentHash`). */
  get ring (): Readonly<RingConfig> {
    return this.#ring
  }

  /**
   * Picks an endpoint for a new connection, or undefined when no candidate is
   * left. Candidates are the endpoints that are ready and serve
   * `svc.portName`, minus `ctx.exclude`.
   */
  pick (svc: ServicePortKey, endpoints: readonly Endpoint[], ctx: PickContext = {}): Endpoint | undefined {
    const state = this.#state(svc)
    if (endpoints !== state.lastInput) {
      state.lastInput = endpoints
      state.candidates = endpoints.filter(ep => ep.ready && targetPort(ep, svc.portName) !== undefined)
    }
    return state.policy.pick(state.candidates, ctx)
  }

  /**
   * Picks for successive connection attempts: each endpoint yielded after the
   * first excludes those yielded before (and `ctx.exclude`). Ask for the next
   * one only after a failed dial; stops after `maxAttempts` or when no
   * candidate is left.
   */
  attempts (svc: ServicePortKey, endpoints: readonly Endpoint[], ctx: PickContext = {}, maxAttempts = DEFAULT_MAX_ATTEMPTS): IterableIterator<Endpoint> {
    return new Attempts(this, svc, endpoints, ctx, maxAttempts)
  }

  /** True when the port's policy needs the HTTP request (consistent hash by header or cookie): userspace proxying, no kernel fast path. */
  needsHttp (service: ServiceKey, port: number): boolean {
    const eff = this.policyFor(service, port)
    return eff.spec.type !== 'CLIENT_IP' && specNeedsHttp(eff.spec)
  }

  /** The policy that applies to a service port now. */
  policyFor (service: ServiceKey, port: number): EffectivePolicy {
    const rule = this.ruleFor(service)
    const ruleId = rule === undefined ? undefined : `${rule.namespace}/${rule.name}`
    const spec = rule === undefined ? undefined : policyForPort(rule, port)
    const info = this.#services.get(service)
    if (info?.sessionAffinity === 'ClientIP') {
      const timeoutSeconds = info.affinityTimeoutSeconds > 0 ? info.affinityTimeoutSeconds : DEFAULT_AFFINITY_TIMEOUT_SECONDS
      return { spec: { type: 'CLIENT_IP', timeoutSeconds }, source: 'sessionAffinity', ...(spec !== undefined ? { rule: ruleId } : {}), conflict: spec !== undefined }
    }
    if (spec !== undefined) return { spec, source: 'destinationRule', rule: ruleId, conflict: false }
    return { spec: { type: 'ROUND_ROBIN' }, source: 'default', conflict: false }
  }

  /** The DestinationRule bound to a Service, if any. */
  ruleFor (service: ServiceKey): DestinationRule | undefined {
    const hosted = this.#byHost.get(service)
    if (hosted !== undefined && hosted.size > 0) return this.#rules.get([...hosted].sort()[0] as string)
    return this.#matchByName ? this.#rules.get(service) : undefined
  }

  /** Adds or replaces a DestinationRule (parse it with `parseDestinationRule`). */
  setRule (rule: DestinationRule): void {
    const id = `${rule.namespace}/${rule.name}`
    const old = this.#rules.get(id)
    if (old !== undefined) this.#unbind(id, old)
    this.#rules.set(id, rule)
    if (rule.hostService !== undefined) {
      let set = this.#byHost.get(rule.hostService)
      if (set === undefined) this.#byHost.set(rule.hostService, set = new Set())
      set.add(id)
    }
    this.#refresh([id, rule.hostService, old?.hostService])
  }

  /** Removes a DestinationRule; its services fall back to the next rule or the default. */
  deleteRule (namespace: string, name: string): void {
    const id = `${namespace}/${name}`
    const old = this.#rules.get(id)
    if (old === undefined) return
    this.#unbind(id, old)
    this.#rules.delete(id)
    this.#refresh([id, old.hostService])
  }

  /** Feeds service-map changes: session-affinity settings, endpoint removals, deleted services. */
  onServicesChanged (changes: readonly ServiceChange[]): void {
    for (const change of changes) {
      if (change.type === 'delete') {
        this.#services.delete(change.key)
        this.#states.delete(change.key)
        continue
      }
      this.#services.set(change.key, change.entry.service)
      this.#refresh([change.key])
      this.onEndpointsChanged(change.key, change.entry.endpoints)
    }
  }

  /** Drops per-client state that refers to endpoints no longer ready (affinity entries). */
  onEndpointsChanged (service: ServiceKey, endpoints: readonly Endpoint[]): void {
    const ports = this.#states.get(service)
    if (ports === undefined) return
    for (const state of ports.values()) {
      if (state.policy instanceof SessionAffinityPolicy) {
        state.policy.onEndpointsChanged(endpoints.filter(ep => ep.ready && targetPort(ep, state.portName) !== undefined))
      }
    }
  }

  #unbind (id: string, rule: DestinationRule): void {
    if (rule.hostService === undefined) return
    const set = this.#byHost.get(rule.hostService)
    set?.delete(id)
    if (set?.size === 0) this.#byHost.delete(rule.hostService)
  }

  /** Re-evaluates the policy of every known port of these services; replaces only those whose policy changed. */
  #refresh (services: ReadonlyArray<ServiceKey | undefined>): void {
    for (const service of new Set(services)) {
      if (service === undefined) continue
      const ports = this.#states.get(service)
      if (ports === undefined) continue
      for (const [port, state] of ports) {
        const eff = this.policyFor(service, port)
        if (signatureOf(eff) !== state.signature) ports.delete(port)
      }
    }
  }

  #state (svc: ServicePortKey): PortState {
    let ports = this.#states.get(svc.service)
    if (ports === undefined) this.#states.set(svc.service, ports = new Map())
    let state = ports.get(svc.port)
    if (state === undefined || state.portName !== svc.portName) {
      const eff = this.policyFor(svc.service, svc.port)
      state = { signature: signatureOf(eff), policy: this.#build(eff, svc.portName), portName: svc.portName, lastInput: undefined, candidates: [] }
      ports.set(svc.port, state)
    }
    return state
  }

  #build (eff: EffectivePolicy, portName: string): LbPolicy {
    const spec = eff.spec
    switch (spec.type) {
      case 'ROUND_ROBIN': return new RoundRobinPolicy({ portName, random: this.#random })
      case 'RANDOM': return new RandomPolicy({ portName, random: this.#random })
      case 'CLIENT_IP': return new SessionAffinityPolicy({ portName, timeoutSeconds: spec.timeoutSeconds, now: this.#now, inner: new RoundRobinPolicy({ portName, random: this.#random }) })
      case 'CONSISTENT_HASH': {
        const key = spec.key.type === 'sourceIp' ? { type: 'sourceIp' as const, withPort: this.#sourceIpWithPort } : { type: spec.key.type, name: spec.key.name }
        return new ConsistentHashPolicy({ key, ring: this.#ring, portName, missingKey: this.#missingKey, fallback: new RoundRobinPolicy({ portName, random: this.#random }) })
      }
    }
  }
}

function signatureOf (eff: EffectivePolicy): string {
  return JSON.stringify(eff.spec)
}
