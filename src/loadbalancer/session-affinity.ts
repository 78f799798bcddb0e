import { endpointKey } from './policy.ts'
import type { Clock, LbPolicy, PickContext } from './policy.ts'
import type { Endpoint } from '../servicemap/types.ts'

/** Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`. */
export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10_800

/** Every this many picks, expired entries are swept so the table cannot grow without bound. */
const SWEEP_EVERY_PICKS = 1024

export interface SessionAffinityInit {
  /** The policy used when a client has no live entry (round robin in Kubernetes). */
  inner: LbPolicy
  /** Service port name: endpoints are identified by their target port for it. @default '' */
  portName?: string
  /** The Service's `sessionAffinityConfig.clientIP.timeoutSeconds`. @default 10800 */
  timeoutSeconds?: number
  /** Milliseconds. @default performance.now */
  now?: Clock
}

interface Entry { key: string, lastUsedMs: number }

/**
 * Service `sessionAffinity: ClientIP`: a client IP keeps its endpoint while it
 * keeps connecting within `timeoutSeconds` of its last connection (a sliding
 * window, as kube-proxy's userspace proxier does). An entry is dropped when it
 * expires, when its endpoint is no longer a candidate, or when the endpoint is
 * excluded on a retry (the retry's pick becomes the new entry). Clients
 * without an IP in the context get the inner policy and no entry.
 */
export class SessionAffinityPolicy implements LbPolicy {
  readonly name = 'CLIENT_IP'
  readonly #inner: LbPolicy
  readonly #portName: string
  readonly #timeoutMs: number
  readonly #now: Clock
  readonly #entries = new Map<string, Entry>()
  #picks = 0

  constructor (init: SessionAffinityInit) {
    this.#inner = init.inner
    this.#portName = init.portName ?? ''
    this.#timeoutMs = (init.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_SECONDS) * 1000
    this.#now = init.now ?? (() => performance.now())
  }

  /** Number of live client entries (for tests and debugging). */
  get size (): number { return this.#entries.size }

  pick (endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    const now = this.#now()
    if (++this.#picks % SWEEP_EVERY_PICKS === 0) this.sweep()
    const ip = ctx.clientIP
    if (ip === undefined || ip === '') return this.#inner.pick(endpoints, ctx)
    const entry = this.#entries.get(ip)
    if (entry !== undefined) {
      const alive = now - entry.lastUsedMs < this.#timeoutMs
      const ep = alive && ctx.exclude?.has(entry.key) !== true ? endpoints.find(e => endpointKey(e, this.#portName) === entry.key) : undefined
      if (ep !== undefined) {
        entry.lastUsedMs = now
        return ep
      }
      this.#entries.delete(ip)
    }
    const ep = this.#inner.pick(endpoints, ctx)
    if (ep !== undefined) this.#entries.set(ip, { key: endpointKey(ep, this.#portName), lastUsedMs: now })
    return ep
  }

  /** Drops entries whose endpoint is not among `endpoints` any more. */
  onEndpointsChanged (endpoints: readonly Endpoint[]): void {
    const keys = new Set(endpoints.map(ep => endpointKey(ep, this.#portName)))
    for (const [ip, entry] of this.#entries) if (!keys.has(entry.key)) this.#entries.delete(ip)
  }

  /** Drops expired entries. */
  sweep (): void {
    const now = this.#now()
    for (const [ip, entry] of this.#entries) if (now - entry.lastUsedMs >= this.#timeoutMs) this.#entries.delete(ip)
  }
}
