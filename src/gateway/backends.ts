/**
 * Reaching a route's destination: the Service port it names, an endpoint
 * chosen by the load balancer (DestinationRule policies apply), and a
 * connection to it through the same dialer as the agent's proxy: directly on
 * this network, through the mesh otherwise. HTTP requests reuse connections
 * per endpoint through undici's pools, or the fast path's own pool of raw
 * connections.
 */
import { Socket } from 'node:net'
import type { Duplex, Readable } from 'node:stream'
import { Agent } from 'undici'
import type { Dispatcher } from 'undici'
import { H2Pool } from './h2-pool.ts'
import { Http1Pool } from './http1-pool.ts'
import type { BackendConnection } from './http1-pool.ts'
import type { UpstreamResponse } from './h2-pool.ts'
import type { LoadBalancer, PickContext, ServicePortKey } from '../loadbalancer/index.ts'
import { targetPort } from '../loadbalancer/index.ts'
import type { EndpointDialer } from '../mesh/endpoint-dialer.ts'
import type { Endpoint, ServiceEntry, ServiceMapView } from '../servicemap/types.ts'
import type { Destination } from './istio.ts'

/** Endpoints tried per request or connection when they refuse, first pick included. */
const MAX_ATTEMPTS = 3

/** `status`: what the client is answered when not 503 (500 for references Gateway API calls invalid). */
/** `dest`: the destination picked, for its own header edits. */
export type Resolved = { ok: true, svc: ServicePortKey, endpoints: readonly Endpoint[], h2: boolean, dest: Destination } | { ok: false, why: string, status?: number }

/** appProtocol values (and Istio's port-name prefixes) that mean the backend speaks HTTP/2 without TLS. */
const H2C_PROTOCOLS = new Set(['kubernetes.io/h2c', 'h2c', 'grpc', 'http2'])

/** Whether a Service port speaks cleartext HTTP/2: by appProtocol, else by Istio's name convention (`grpc-…`, `http2-…`). */
export function speaksH2c (port: { name: string, appProtocol?: string }): boolean {
  if (port.appProtocol !== undefined) return H2C_PROTOCOLS.has(port.appProtocol.toLowerCase())
  const prefix = port.name.toLowerCase().split('-')[0] ?? ''
  return prefix === 'grpc' || prefix === 'http2' || prefix === 'h2c'
}

/** Picks one destination by weight. */
function pickWeighted<T extends { weight: number }> (list: readonly T[], random: () => number = Math.random): T | undefined {
  const total = list.reduce((s, d) => s + d.weight, 0)
  if (total <= 0) return list[0]
  let r = random() * total
  for (const d of list) {
    r -= d.weight
    if (r < 0) return d
  }
  return list[list.length - 1]
}

/**
 * Streams from the mesh that are not sockets (libp2p streams to Go agents)
 * get the socket methods an HTTP client calls on its connections.
 */
function socketLike (s: Duplex): Socket {
  if (s instanceof Socket) return s
  const o = s as Duplex & Partial<Pick<Socket, 'setKeepAlive' | 'setNoDelay' | 'ref' | 'unref' | 'setTimeout'>>
  o.setKeepAlive ??= () => o as unknown as Socket
  o.setNoDelay ??= () => o as unknown as Socket
  o.ref ??= () => o as unknown as Socket
  o.unref ??= () => o as unknown as Socket
  o.setTimeout ??= () => o as unknown as Socket
  return o as unknown as Socket
}

/** The load balancer's attempts, each with the endpoint's port for the Service port: an iterator, not a generator (see `LoadBalancer.attempts`). */
class PortAttempts implements IterableIterator<{ ep: Endpoint, port: number }> {
  readonly #picks: Iterator<Endpoint>
  readonly #portName: string

  constructor (picks: Iterator<Endpoint>, portName: string) {
    this.#picks = picks
    this.#portName = portName
  }

  next (): IteratorResult<{ ep: Endpoint, port: number }, undefined> {
    for (let n = this.#picks.next(); n.done !== true; n = this.#picks.next()) {
      const port = targetPort(n.value, this.#portName)
      if (port !== undefined) return { done: false, value: { ep: n.value, port } }
    }
    return { done: true, value: undefined }
  }

  [Symbol.iterator] (): this {
    return this
  }
}

/** What a pooled connection to an endpoint needs to be dialed again: its node (direct or through the mesh) and service. */
interface EndpointInfo { nodeName: string | undefined, service: string }

/** Endpoints remembered for the pool's dials; past this many the oldest are forgotten (open connections stay). */
const MAX_REMEMBERED = 16_384

export interface UpstreamRequest {
  method: string
  path: string
  headers: Record<string, string | string[]>
  body: Readable | null
  signal: AbortSignal | undefined
  /** Cleartext HTTP/2 (prior knowledge) to the endpoint: gRPC, or a Service port that says so. */
  h2: boolean
}

/** A DestinationRule subset's pod labels (`namespace/service`, subset name); undefined when no rule defines it. */
export type SubsetLookup = (service: string, subset: string) => Readonly<Record<string, string>> | undefined
/** The labels of a Pod (`namespace/name`); undefined when it is not known. */
export type PodLabelsLookup = (key: string) => Readonly<Record<string, string>> | undefined

export class Backends {
  readonly #view: ServiceMapView
  readonly #lb: LoadBalancer
  readonly #dialer: EndpointDialer
  readonly #endpoints = new Map<string, EndpointInfo>()
  /** undici's per-origin pools: 1.45× the requests/s of node:http's keep-alive client as a bare proxy (bench:gateway). */
  readonly #pool: Agent
  /** HTTP/2 without TLS to backends that speak it (gRPC): streams multiplexed on one session per endpoint. */
  readonly #h2: H2Pool
  /** Raw kept-alive connections for the HTTP/1.1 fast path (`http1-fast.ts`). */
  readonly #http1 = new Http1Pool({ maxIdlePerKey: 256, idleMs: 30_000 })

  /** The last resolution of each route destination, with the service map entry it was made from. */
  readonly #resolved = new WeakMap<Destination, { entry: ServiceEntry, r: Resolved }>()
  readonly #subset: SubsetLookup
  readonly #podLabels: PodLabelsLookup

  constructor (deps: { serviceMap: ServiceMapView, loadBalancer: LoadBalancer, dialer: EndpointDialer, subset?: SubsetLookup, podLabels?: PodLabelsLookup }) {
    this.#subset = deps.subset ?? (() => undefined)
    this.#podLabels = deps.podLabels ?? (() => undefined)
    this.#view = deps.serviceMap
    this.#lb = deps.loadBalancer
    this.#dialer = deps.dialer
    this.#pool = new Agent({
      // Every connection comes from the mesh dialer: direct on this network, through a peer otherwise.
      connect: (opts, callback) => {
        this.#dialKey(`${opts.hostname.replace(/^\[|\]$/g, '')}:${opts.port}`)
          .then(s => { callback(null, socketLike(s)) }, (err: Error) => { callback(err, null) })
      },
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      pipelining: 1
    })
    this.#h2 = new H2Pool(async key => await this.#dialKey(key))
  }

  /** A connection to `ip:port` of an endpoint a request was sent to. */
  async #dialKey (key: string): Promise<Duplex> {
    const colon = key.lastIndexOf(':')
    const ip = key.slice(0, colon)
    const info = this.#endpoints.get(key)
    return await this.#dialer.dialTcp({ ip, port: Number(key.slice(colon + 1)), nodeName: info?.nodeName, service: info?.service ?? '' })
  }

  /** Remembers how to dial an endpoint again; its pool key. */
  #remember (ep: Endpoint, port: number, service: string): string {
    const key = `${ep.ip}:${port}`
    if (!this.#endpoints.has(key)) {
      if (this.#endpoints.size >= MAX_REMEMBERED) this.#endpoints.delete(this.#endpoints.keys().next().value as string)
      this.#endpoints.set(key, { nodeName: ep.nodeName, service })
    }
    return key
  }

  /** One HTTP request to one endpoint, on a pooled connection. */
  async request (ep: Endpoint, port: number, service: string, req: UpstreamRequest): Promise<UpstreamResponse> {
    const key = this.#remember(ep, port, service)
    if (req.h2) return await this.#h2.request(key, req)
    const origin = `http://${ep.ip.includes(':') ? `[${ep.ip}]` : ep.ip}:${port}`
    return await this.#pool.request({ origin, method: req.method as Dispatcher.HttpMethod, path: req.path, headers: req.headers, body: req.body, signal: req.signal })
  }

  /** The Service port a destination names: its `port.number`, or the Service's only TCP port. */
  resolve (dest: Destination): Resolved {
    if (dest.invalid !== undefined) return { ok: false, why: dest.invalid, status: 500 }
    const entry = this.#view.get(dest.service)
    if (entry === undefined) return { ok: false, why: `service ${dest.service} not found` }
    // Service map entries are replaced, never changed: the same entry resolves the same way. A subset also depends on Pods and DestinationRules.
    if (dest.subset !== undefined) return this.#resolve(dest, entry)
    const cached = this.#resolved.get(dest)
    if (cached?.entry === entry) return cached.r
    const r = this.#resolve(dest, entry)
    this.#resolved.set(dest, { entry, r })
    return r
  }

  #resolve (dest: Destination, entry: ServiceEntry): Resolved {
    const tcp = entry.service.ports.filter(p => p.protocol === 'TCP')
    const port = dest.port !== undefined ? tcp.find(p => p.port === dest.port) : tcp.length === 1 ? tcp[0] : undefined
    if (port === undefined) return { ok: false, why: dest.port !== undefined ? `service ${dest.service} has no TCP port ${dest.port}` : `service ${dest.service} has several ports; the destination must name one` }
    let endpoints = entry.endpoints
    if (dest.subset !== undefined) {
      const labels = this.#subset(dest.service, dest.subset)
      if (labels === undefined) return { ok: false, why: `subset ${dest.subset} of ${dest.service} is not defined by a DestinationRule` }
      // Endpoints name their Pod; the Pod's labels say whether it is in the subset (Istio's semantics).
      const ns = dest.service.slice(0, dest.service.indexOf('/'))
      endpoints = endpoints.filter(ep => {
        const pod = ep.podName === undefined ? undefined : this.#podLabels(`${ns}/${ep.podName}`)
        return pod !== undefined && Object.entries(labels).every(([k, v]) => pod[k] === v)
      })
    }
    return { ok: true, svc: { service: dest.service, port: port.port, portName: port.name }, endpoints, h2: speaksH2c(port), dest }
  }

  /** A destination picked by weight, resolved to its Service port. */
  choose (destinations: readonly Destination[]): Resolved {
    const dest = pickWeighted(destinations)
    return dest === undefined ? { ok: false, why: 'no destination' } : this.resolve(dest)
  }

  /** Endpoints in the order the load balancer offers them, at most three. */
  attempts (r: Extract<Resolved, { ok: true }>, ctx: PickContext): IterableIterator<{ ep: Endpoint, port: number }> {
    return new PortAttempts(this.#lb.attempts(r.svc, r.endpoints, ctx, MAX_ATTEMPTS), r.svc.portName)
  }

  /**
   * A connection to the first endpoint that accepts (at most three tried, in
   * the load balancer's order); `failed` is told of each one that did not.
   * Undefined when none accepted or `signal` aborted.
   */
  async connect (r: Extract<Resolved, { ok: true }>, ctx: PickContext, signal: AbortSignal, failed: () => void): Promise<Duplex | undefined> {
    for (const { ep, port } of this.attempts(r, ctx)) {
      if (signal.aborted) return undefined
      try {
        return await this.#dialer.dialTcp({ ip: ep.ip, port, nodeName: ep.nodeName, service: r.svc.service }, signal)
      } catch {
        failed()
      }
    }
    return undefined
  }

  /** For the HTTP/1.1 fast path: an idle kept-alive connection to the endpoint, when one is kept. */
  http1Take (ep: Endpoint, port: number, service: string): BackendConnection | undefined {
    return this.#http1.take(this.#remember(ep, port, service))
  }

  /** For the HTTP/1.1 fast path: a new connection to the endpoint. */
  async http1Dial (ep: Endpoint, port: number, service: string): Promise<BackendConnection> {
    const key = this.#remember(ep, port, service)
    return this.#http1.adopt(await this.#dialKey(key), key)
  }

  /** Gives back a fast-path connection whose response ended cleanly, to be idle at most `idleMs`. */
  http1Release (c: BackendConnection, idleMs?: number): void {
    this.#http1.release(c, idleMs)
  }

  close (): void {
    this.#http1.close()
    this.#pool.destroy().catch(() => {})
    this.#h2.close()
  }
}
