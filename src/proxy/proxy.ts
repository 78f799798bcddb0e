/**
 * EdgeProxy: intercepts ClusterIP traffic and sends it to endpoints.
 *
 * For every ClusterIP service port it chooses a path:
 * - kernel: every ready endpoint is reached without the tunnel and the policy
 *   is one nftables can express (round robin, random, ClientIP affinity) →
 *   DNAT in the kernel, no userspace copy;
 * - userspace: otherwise (endpoints behind the tunnel, HTTP-aware policies,
 *   no ready endpoint) → DNAT to a listener of ours, which picks and dials.
 * Service-map changes touch only the changed service's ports and listeners,
 * and reach the kernel as one incremental transaction.
 */
import type { Component, StopOptions } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import type { Registry } from 'prom-client'
import { LoadBalancer, targetPort } from '../loadbalancer/index.ts'
import type { DestinationRule, ServicePortKey } from '../loadbalancer/index.ts'
import { serviceProxyFilter } from '../servicemap/filter.ts'
import type { ServiceFilterMode } from '../servicemap/filter.ts'
import type { ServiceChange, ServiceEntry, ServiceKey, ServiceMapView } from '../servicemap/types.ts'
import type { EndpointDialer } from '../mesh/endpoint-dialer.ts'
import type { Interceptor } from './nftables.ts'
import { ProxyMetrics } from './metrics.ts'
import { WarnSummary } from '../observability/warn-summary.ts'
import { ListenOverflowWatch } from '../net/listen-overflows.ts'
import { TcpServiceListener, UdpServiceListener } from './listeners.ts'
import type { ListenerRuntime, ServiceListener } from './listeners.ts'
import { ruleKey } from './rules.ts'
import type { HostPort, L4, PortRule } from './rules.ts'

export interface EdgeProxyDeps {
  logger: Logger
  metrics: Registry
  serviceMap: ServiceMapView
  interceptor: Interceptor
  dialer: EndpointDialer
  /** True when endpoints on `nodeName` are dialed without the tunnel. */
  isDirect: (nodeName: string | undefined) => boolean
  /** Shared with whoever feeds DestinationRules (`setRule`/`deleteRule`). */
  loadBalancer?: LoadBalancer
  /** Told about every stream the userspace path copies, so their buffers are reclaimed early. */
  copied?: CopiedStreams
}

export interface EdgeProxyInit {
  /** Address the userspace listeners bind (the bridge device IP). */
  listenIp: string
  serviceFilterMode: ServiceFilterMode
  /** DNAT in the kernel where possible. @default true */
  kernelPath?: boolean
  /** @default 3 */
  maxAttempts?: number
  /** @default 5000 */
  peekTimeoutMs?: number
  /** @default 30000 */
  udpIdleTimeoutMs?: number
  /**
   * TCP clients waiting for their endpoint at once, over all listeners; more are reset at once
   * (load shedding: under overload a queue of waiting clients only delays recovery). @default 512
   */
  maxPendingConnections?: number
  /** First retry after a failed sync; doubles per failed retry. @default 1000 */
  syncRetryMinMs?: number
  /** @default 30000 */
  syncRetryMaxMs?: number
  /** How often the kernel's listen-queue overflow count is read (a warn and a metric when it grows). @default 5000 */
  listenOverflowPollMs?: number
}

/** One intercepted (ClusterIP, protocol, port) and how it is served. */
interface PortState {
  rule: PortRule
  svc: ServicePortKey
  listener?: ServiceListener | undefined
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/

export class EdgeProxy implements Component {
  readonly name = 'proxy'
  readonly loadBalancer: LoadBalancer
  readonly #deps: EdgeProxyDeps
  readonly #init: Required<EdgeProxyInit>
  readonly #filter: (entry: ServiceEntry) => boolean
  /** Rule key → state, grouped by service so a change touches only its own ports. */
  readonly #ports = new Map<ServiceKey, Map<string, PortState>>()
  readonly #desired = new Map<string, PortRule>()
  /** Listeners replaced by a change: closed (no new connections) but draining. */
  readonly #draining = new Set<ServiceListener>()
  #metrics: ProxyMetrics | undefined
  #runtime: ListenerRuntime | undefined
  #previousPorts: ReadonlyMap<string, number> = new Map()
  #unsubscribe: (() => void) | undefined
  #overflows: ListenOverflowWatch | undefined
  #started = false
  #synced = false
  #work: Promise<void> = Promise.resolve()
  /** Failed syncs since the last good full sync (0 = healthy). */
  #failures = 0
  #retryDelay: number
  #retryTimer: NodeJS.Timeout | undefined

  constructor (deps: EdgeProxyDeps, init: EdgeProxyInit) {
    this.#deps = deps
    this.loadBalancer = deps.loadBalancer ?? new LoadBalancer()
    this.#init = { kernelPath: true, maxAttempts: 3, peekTimeoutMs: 5000, udpIdleTimeoutMs: 30_000, maxPendingConnections: 512, syncRetryMinMs: 1000, syncRetryMaxMs: 30_000, listenOverflowPollMs: 5000, ...init }
    this.#retryDelay = this.#init.syncRetryMinMs
    this.#filter = serviceProxyFilter(init.serviceFilterMode)
  }

  isReady (): boolean {
    return this.#started && this.#synced
  }

  /** The intercepted service ports and their paths (for status and tests). */
  rules (): ReadonlyMap<string, PortRule> {
    return this.#desired
  }

  /** The userspace listener port of a service port, if it has one (tests, status). */
  listenerPort (clusterIP: string, protocol: L4, port: number): number | undefined {
    for (const ports of this.#ports.values()) {
      const p = ports.get(ruleKey({ ip: clusterIP, protocol, port }))
      if (p !== undefined) return p.listener?.port
    }
    return undefined
  }

  async start (): Promise<void> {
    if (this.#started) return
    const deps = this.#deps
    this.#metrics ??= new ProxyMetrics(deps.metrics)
    this.#runtime = {
      log: deps.logger,
      failures: new WarnSummary(deps.logger, 'proxied connections failed'),
      lb: this.loadBalancer,
      view: deps.serviceMap,
      dialer: deps.dialer,
      isDirect: deps.isDirect,
      metrics: this.#metrics,
      maxAttempts: this.#init.maxAttempts,
      peekTimeoutMs: this.#init.peekTimeoutMs,
      udpIdleTimeoutMs: this.#init.udpIdleTimeoutMs,
      pending: { now: 0, max: this.#init.maxPendingConnections },
      copied: deps.copied
    }
    this.#previousPorts = await deps.interceptor.load()
    this.#started = true
    const runtime = this.#runtime
    this.#overflows = new ListenOverflowWatch(dropped => {
      runtime.metrics.listenOverflows.inc(dropped)
      runtime.failures.record('listen queues overflowed (node-wide: clients dropped by the kernel before the agent saw them)', dropped)
    }, { everyMs: this.#init.listenOverflowPollMs })
    await this.#overflows.start()
    // #enqueue never rejects: a failed sync is logged and retried.
    this.#unsubscribe = deps.serviceMap.subscribe(changes => { this.#enqueue(async () => await this.#onChanges(changes)).catch(() => {}) })
    if (deps.serviceMap.hasSynced()) await this.#enqueue(async () => await this.#fullSync())
  }

  async stop (options?: StopOptions): Promise<void> {
    if (!this.#started) return
    this.#started = false
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    this.#overflows?.stop()
    this.#runtime?.failures.flush()
    this.#runtime?.failures.stop()
    await this.#work
    this.#failures = 0
    this.#retryDelay = this.#init.syncRetryMinMs
    const listeners = [...this.#draining]
    for (const ports of this.#ports.values()) for (const p of ports.values()) if (p.listener !== undefined) listeners.push(p.listener)
    await Promise.all(listeners.map(async l => await l.close()))
    // Rules stay installed: kernel-path services keep working while the agent restarts.
    if (options?.signal !== undefined && !options.signal.aborted) {
      await new Promise<void>(resolve => {
        const t = setTimeout(resolve, 200)
        options.signal?.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
      })
    }
    for (const l of listeners) l.destroyAll()
    this.#deps.interceptor.close?.()
    this.#draining.clear()
    this.#ports.clear()
    this.#desired.clear()
    this.#synced = false
  }

  /** Re-evaluates every service (after a DestinationRule change: policies decide kernel vs userspace). */
  async refresh (): Promise<void> {
    await this.#enqueue(async () => await this.#fullSync())
  }

  /** Adds or replaces a DestinationRule and re-plans the services it may bind. */
  async setRule (rule: DestinationRule): Promise<void> {
    this.loadBalancer.setRule(rule)
    await this.refresh()
  }

  async deleteRule (namespace: string, name: string): Promise<void> {
    this.loadBalancer.deleteRule(namespace, name)
    await this.refresh()
  }

  async #enqueue (task: () => Promise<void>): Promise<void> {
    const run = this.#work.then(async () => { if (this.#started) await task() })
    this.#work = run.catch(err => { this.#syncFailed(err) })
    await this.#work
  }

  /**
   * Without a retry a failed sync (say `nft` erroring) would leave the kernel
   * stale until the next service change. Like kube-proxy, retry a full sync
   * on a backoff timer; one timer at most, its delay grows only when a retry fails.
   */
  #syncFailed (err: unknown): void {
    this.#failures++
    const log = this.#deps.logger
    if (this.#failures === 1) log.warn('proxy rules sync failed; retrying', { err, retryMs: this.#retryDelay })
    else log.debug('proxy rules sync failed again', { err, failures: this.#failures })
    if (!this.#started || this.#retryTimer !== undefined) return
    const delay = this.#retryDelay
    this.#retryDelay = Math.min(delay * 2, this.#init.syncRetryMaxMs)
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.#enqueue(async () => await this.#fullSync()).catch(() => {})
    }, delay)
  }

  /** After a good full sync: nothing is left stale, end the failure streak. */
  #syncSucceeded (): void {
    if (this.#failures === 0) return
    this.#deps.logger.info('proxy rules sync recovered', { failures: this.#failures })
    this.#failures = 0
    this.#retryDelay = this.#init.syncRetryMinMs
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
  }

  async #fullSync (): Promise<void> {
    const snapshot = this.#deps.serviceMap.snapshot()
    const updates: ServiceChange[] = [...snapshot].map(([key, entry]) => ({ type: 'upsert', key, entry }))
    this.loadBalancer.onServicesChanged(updates)
    const planned: Array<[ServiceKey, ServiceEntry | undefined]> = [...snapshot]
    for (const key of this.#ports.keys()) if (!snapshot.has(key)) planned.push([key, undefined])
    await this.#apply(planned)
    this.#syncSucceeded()
  }

  async #onChanges (changes: readonly ServiceChange[]): Promise<void> {
    this.loadBalancer.onServicesChanged(changes)
    await this.#apply(changes.map(c => [c.key, c.type === 'upsert' ? c.entry : undefined]))
  }

  async #apply (services: ReadonlyArray<[ServiceKey, ServiceEntry | undefined]>): Promise<void> {
    const started = performance.now()
    for (const [key, entry] of services) await this.#plan(key, entry !== undefined && this.#filter(entry) ? entry : undefined)
    const metrics = this.#metrics as ProxyMetrics
    try {
      await this.#deps.interceptor.apply(this.#desired)
      metrics.syncSeconds.observe({ interceptor: this.#deps.interceptor.name }, (performance.now() - started) / 1000)
    } catch (err) {
      metrics.syncErrors.inc({ interceptor: this.#deps.interceptor.name })
      throw err
    }
    let kernel = 0
    for (const r of this.#desired.values()) if (r.target.kind === 'kernel') kernel++
    metrics.rules.set({ path: 'kernel' }, kernel)
    metrics.rules.set({ path: 'userspace' }, this.#desired.size - kernel)
    const ms = Math.round((performance.now() - started) * 100) / 100
    if (!this.#synced && this.#deps.serviceMap.hasSynced()) {
      this.#synced = true
      this.#deps.logger.info('proxy rules installed', { kernel, userspace: this.#desired.size - kernel, interceptor: this.#deps.interceptor.name, ms })
    } else {
      this.#deps.logger.debug('proxy rules updated', { services: services.length, ms })
    }
  }

  /** Brings one service's port states, listeners and desired rules in line with `entry` (undefined = not proxied). */
  async #plan (key: ServiceKey, entry: ServiceEntry | undefined): Promise<void> {
    const old = this.#ports.get(key) ?? new Map<string, PortState>()
    const next = new Map<string, PortState>()
    for (const { rule, svc } of entry === undefined ? [] : this.#portRules(key, entry)) {
      const rkey = ruleKey(rule)
      const prev = old.get(rkey)
      const state: PortState = { rule, svc }
      if (rule.target.kind === 'userspace') {
        // Keep a listener serving the same service port: its port is already in the rule.
        if (prev?.listener !== undefined && prev.svc.portName === svc.portName) {
          state.listener = prev.listener
        } else {
          state.listener = await this.#listen(rule.protocol, svc, this.#previousPorts.get(rkey))
        }
        rule.target = { kind: 'userspace', listener: { ip: this.#init.listenIp, port: state.listener.port } }
      }
      next.set(rkey, state)
    }
    for (const [rkey, prev] of old) {
      if (next.get(rkey)?.listener === prev.listener || prev.listener === undefined) continue
      // Replaced or gone: stop accepting, let open connections finish.
      this.#draining.add(prev.listener)
      await prev.listener.close()
    }
    for (const rkey of old.keys()) if (!next.has(rkey)) this.#desired.delete(rkey)
    for (const [rkey, state] of next) this.#desired.set(rkey, state.rule)
    if (next.size > 0) this.#ports.set(key, next)
    else this.#ports.delete(key)
  }

  async #listen (protocol: L4, svc: ServicePortKey, preferred: number | undefined): Promise<ServiceListener> {
    const rt = this.#runtime as ListenerRuntime
    const listener = protocol === 'tcp' ? new TcpServiceListener(rt, svc, this.#init.listenIp) : new UdpServiceListener(rt, svc, this.#init.listenIp)
    await listener.listen(preferred)
    return listener
  }

  /** The rules a service needs: one per IPv4 ClusterIP (and load-balancer IP) × TCP/UDP port. */
  #portRules (key: ServiceKey, entry: ServiceEntry): Array<{ rule: PortRule, svc: ServicePortKey }> {
    const s = entry.service
    if (s.type === 'ExternalName' || s.headless) return []
    const ips = [...s.clusterIPs, ...s.loadBalancerIPs].filter(ip => IPV4.test(ip))
    const out: Array<{ rule: PortRule, svc: ServicePortKey }> = []
    for (const p of s.ports) {
      if (p.protocol === 'SCTP') continue
      const protocol = p.protocol === 'UDP' ? 'udp' : 'tcp'
      const svc: ServicePortKey = { service: key, port: p.port, portName: p.name }
      const target = this.#target(svc, entry)
      const comment = `${key}:${p.name === '' ? String(p.port) : p.name}`
      for (const ip of ips) {
        out.push({ rule: { ip, protocol, port: p.port, comment, target: target ?? { kind: 'userspace', listener: { ip: this.#init.listenIp, port: 0 } } }, svc })
      }
    }
    return out
  }

  /** A kernel target when this service port qualifies for the kernel path, else undefined (userspace). */
  #target (svc: ServicePortKey, entry: ServiceEntry): PortRule['target'] | undefined {
    if (!this.#init.kernelPath || this.#deps.interceptor.kernelPath === false) return undefined
    const endpoints: HostPort[] = []
    for (const ep of entry.endpoints) {
      if (!ep.ready) continue
      const port = targetPort(ep, svc.portName)
      if (port === undefined) continue
      if (!this.#deps.isDirect(ep.nodeName) || !IPV4.test(ep.ip)) return undefined
      endpoints.push({ ip: ep.ip, port })
    }
    // No endpoint: the listener refuses promptly (a kernel rule would leave clients waiting).
    if (endpoints.length === 0) return undefined
    const policy = this.loadBalancer.policyFor(svc.service, svc.port)
    let pick: 'round-robin' | 'random'
    let affinitySeconds = 0
    switch (policy.spec.type) {
      case 'ROUND_ROBIN': pick = 'round-robin'; break
      case 'RANDOM': pick = 'random'; break
      case 'CLIENT_IP': pick = 'random'; affinitySeconds = policy.spec.timeoutSeconds; break
      default: return undefined
    }
    endpoints.sort((a, b) => a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1)
    return { kind: 'kernel', endpoints, pick, affinitySeconds }
  }
}
