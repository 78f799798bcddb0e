import type { Informer, InformerHandlers } from './informer-types.ts'
import { KubeInformer, startWithFallback } from './informer.ts'
import type { KubeInformerDeps } from './informer.ts'
import { RESOURCES } from './types.ts'
import type { EndpointSlice, Endpoints, KubeObject } from './types.ts'
import type { StopOptions } from '../lifecycle/component.ts'

/** The label EndpointSlices carry to name their Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'

/**
 * Converts a core/v1 Endpoints object into the EndpointSlice shape, so the
 * rest of the agent sees one model. One slice per Endpoints object; address
 * family taken from the first address.
 */
export function endpointsToSlice (e: Endpoints): EndpointSlice {
  const endpoints: NonNullable<EndpointSlice['endpoints']> = []
  let ports: EndpointSlice['ports'] = []
  let family: EndpointSlice['addressType'] = 'IPv4'
  for (const subset of e.subsets ?? []) {
    // Endpoints repeat addresses per port set; slices keep one port list per slice.
    ports = (subset.ports ?? []).map(p => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP', ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}) }))
    for (const [list, ready] of [[subset.addresses ?? [], true], [subset.notReadyAddresses ?? [], false]] as const) {
      for (const a of list) {
        if (a.ip.includes(':')) family = 'IPv6'
        endpoints.push({
          addresses: [a.ip],
          conditions: { ready, serving: ready, terminating: false },
          ...(a.hostname !== undefined ? { hostname: a.hostname } : {}),
          ...(a.nodeName !== undefined ? { nodeName: a.nodeName } : {}),
          ...(a.targetRef !== undefined ? { targetRef: a.targetRef } : {})
        })
      }
    }
  }
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: e.metadata.name,
      ...(e.metadata.namespace !== undefined ? { namespace: e.metadata.namespace } : {}),
      ...(e.metadata.resourceVersion !== undefined ? { resourceVersion: e.metadata.resourceVersion } : {}),
      labels: { [SERVICE_NAME_LABEL]: e.metadata.name }
    },
    addressType: family,
    endpoints,
    ports
  }
}

export interface EndpointSliceSourceInit<S extends KubeObject> {
  /** Turns each slice into what is stored (e.g. a compact model), keeping metadata. */
  transform: (slice: EndpointSlice) => S
}

/**
 * EndpointSlices from discovery.k8s.io/v1, or, when the server does not serve
 * them (old metaServers), core/v1 Endpoints converted to slices. The choice is
 * made in start(), by asking the server.
 */
export class EndpointSliceSource<S extends KubeObject = EndpointSlice> implements Informer<S> {
  readonly name = 'kube:endpointslices'
  readonly #deps: KubeInformerDeps
  readonly #init: EndpointSliceSourceInit<S>
  readonly #handlers: Array<InformerHandlers<S>> = []
  #active: KubeInformer<S> | undefined
  #usingFallback = false

  constructor (deps: KubeInformerDeps, init: EndpointSliceSourceInit<S>) {
    this.#deps = deps
    this.#init = init
  }

  addHandlers (handlers: InformerHandlers<S>): void { this.#handlers.push(handlers) }
  hasSynced (): boolean { return this.#active?.hasSynced() ?? false }
  isReady (): boolean { return this.hasSynced() }
  list (): S[] { return this.#active?.list() ?? [] }
  get (key: string): S | undefined { return this.#active?.get(key) }
  /** True when Endpoints are served in place of EndpointSlices. */
  usingEndpointsFallback (): boolean { return this.#usingFallback }
  waitForSync (signal?: AbortSignal): Promise<void> {
    return this.#active?.waitForSync(signal) ?? Promise.reject(new Error('EndpointSliceSource not started'))
  }

  async start (): Promise<void> {
    if (this.#active !== undefined) return
    const transform = this.#init.transform
    // The watch delivers raw objects; the transform turns each into S before it is stored.
    const primary = this.#wire(new KubeInformer<S>({ resource: RESOURCES.endpointSlices, transform: raw => transform(raw as unknown as EndpointSlice) }, this.#deps))
    const started = await startWithFallback(primary, () => {
      this.#deps.logger.warn('EndpointSlices not served (discovery.k8s.io/v1); using core/v1 Endpoints')
      return this.#wire(new KubeInformer<S>({
        resource: RESOURCES.endpoints,
        transform: raw => transform(endpointsToSlice(raw as unknown as Endpoints))
      }, this.#deps))
    })
    this.#usingFallback = started.kind === 'fallback'
    this.#active = started.informer
  }

  async stop (options?: StopOptions): Promise<void> {
    await this.#active?.stop(options)
  }

  #wire (informer: KubeInformer<S>): KubeInformer<S> {
    for (const h of this.#handlers) informer.addHandlers(h)
    return informer
  }
}
