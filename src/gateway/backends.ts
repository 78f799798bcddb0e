/**
 * Reaching a route's destination: the Service port it names, an endpoint
 * chosen by the load balancer (DestinationRule policies apply), and a
 * connection to it through the same dialer as the agent's proxy: directly on
 * this network, through the mesh otherwise. HTTP requests reuse connections
 * per endpoint through one keep-alive agent.
 */
import http from 'node:http'
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { LoadBalancer, PickContext, ServicePortKey } from '../loadbalancer/index.ts'
import { targetPort } from '../loadbalancer/index.ts'
import type { EndpointDialer } from '../mesh/endpoint-dialer.ts'
import type { Endpoint, ServiceMapView } from '../servicemap/types.ts'
import type { Destination } from './istio.ts'

/** Endpoints tried per request or connection when they refuse, first pick included. */
const MAX_ATTEMPTS = 3

export type Resolved = { ok: true, svc: ServicePortKey, endpoints: readonly Endpoint[] } | { ok: false, why: string }

/** Picks one destination by weight. */
export function pickWeighted<T extends { weight: number }> (list: readonly T[], random: () => number = Math.random): T | undefined {
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
 * get the socket methods an HTTP agent calls on its connections.
 */
function socketLike (s: Duplex): Duplex {
  if (s instanceof Socket) return s
  const o = s as Duplex & Partial<Pick<Socket, 'setKeepAlive' | 'setNoDelay' | 'ref' | 'unref' | 'setTimeout'>>
  o.setKeepAlive ??= () => o as unknown as Socket
  o.setNoDelay ??= () => o as unknown as Socket
  o.ref ??= () => o as unknown as Socket
  o.unref ??= () => o as unknown as Socket
  o.setTimeout ??= () => o as unknown as Socket
  return o
}

interface MeshRequestOptions extends http.RequestOptions {
  nodeName?: string | undefined
  service: string
}

/** An HTTP agent whose connections come from the mesh dialer: pooled per endpoint, whatever path they take. */
class MeshAgent extends http.Agent {
  readonly #dialer: EndpointDialer

  constructor (dialer: EndpointDialer) {
    // Idle connections close after 30 s; at most 16 idle per endpoint.
    super({ keepAlive: true, maxFreeSockets: 16, timeout: 30_000, scheduling: 'lifo' })
    this.#dialer = dialer
  }

  override createConnection (options: MeshRequestOptions, callback: (err: Error | null, socket: Duplex) => void): undefined {
    this.#dialer.dialTcp({ ip: options.host ?? '', port: Number(options.port), nodeName: options.nodeName, service: options.service }, options.signal ?? undefined)
      .then(s => { callback(null, socketLike(s)) }, (err: Error) => { callback(err, undefined as unknown as Duplex) })
    return undefined
  }
}

export class Backends {
  readonly #view: ServiceMapView
  readonly #lb: LoadBalancer
  readonly #dialer: EndpointDialer
  readonly agent: http.Agent

  constructor (deps: { serviceMap: ServiceMapView, loadBalancer: LoadBalancer, dialer: EndpointDialer }) {
    this.#view = deps.serviceMap
    this.#lb = deps.loadBalancer
    this.#dialer = deps.dialer
    this.agent = new MeshAgent(deps.dialer)
  }

  /** The Service port a destination names: its `port.number`, or the Service's only TCP port. */
  resolve (dest: Destination): Resolved {
    const entry = this.#view.get(dest.service)
    if (entry === undefined) return { ok: false, why: `service ${dest.service} not found` }
    const tcp = entry.service.ports.filter(p => p.protocol === 'TCP')
    const port = dest.port !== undefined ? tcp.find(p => p.port === dest.port) : tcp.length === 1 ? tcp[0] : undefined
    if (port === undefined) return { ok: false, why: dest.port !== undefined ? `service ${dest.service} has no TCP port ${dest.port}` : `service ${dest.service} has several ports; the destination must name one` }
    return { ok: true, svc: { service: dest.service, port: port.port, portName: port.name }, endpoints: entry.endpoints }
  }

  /** Endpoints in the order the load balancer offers them, at most three. */
  * attempts (r: Extract<Resolved, { ok: true }>, ctx: PickContext): Generator<{ ep: Endpoint, port: number }> {
    for (const ep of this.#lb.attempts(r.svc, r.endpoints, ctx, MAX_ATTEMPTS)) {
      const port = targetPort(ep, r.svc.portName)
      if (typeof port === 'number') yield { ep, port }
    }
  }

  async dial (ep: Endpoint, port: number, service: string, signal?: AbortSignal): Promise<Duplex> {
    return await this.#dialer.dialTcp({ ip: ep.ip, port, nodeName: ep.nodeName, service }, signal)
  }

  close (): void {
    this.agent.destroy()
  }
}
