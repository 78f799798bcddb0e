/**
 * The typed service model every data-path module consumes (DNS, proxy,
 * gateway). Built from Services + EndpointSlices (or Endpoints); never packed
 * into strings.
 */

export type Protocol = 'TCP' | 'UDP' | 'SCTP'

/** `namespace/name` of a Service. */
export type ServiceKey = string

export interface ServicePort {
  /** Port name; '' when the Service has a single unnamed port. */
  name: string
  protocol: Protocol
  port: number
  targetPort?: number | string
  nodePort?: number
  appProtocol?: string
}

export interface ServiceInfo {
  namespace: string
  name: string
  type: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName'
  /** Empty for headless and ExternalName services. */
  clusterIPs: readonly string[]
  headless: boolean
  externalName?: string
  externalIPs: readonly string[]
  loadBalancerIPs: readonly string[]
  ports: readonly ServicePort[]
  sessionAffinity: 'None' | 'ClientIP'
  /** Seconds; only meaningful when sessionAffinity is ClientIP. */
  affinityTimeoutSeconds: number
  labels: Readonly<Record<string, string>>
}

export interface EndpointPort {
  name: string
  port: number
  protocol: Protocol
  appProtocol?: string
}

export interface Endpoint {
  /** One address per Endpoint (a dual-stack endpoint becomes two). */
  ip: string
  ready: boolean
  serving: boolean
  terminating: boolean
  nodeName?: string
  hostname?: string
  /** targetRef name when it refers to a Pod. */
  podName?: string
  zone?: string
  ports: readonly EndpointPort[]
}

export interface ServiceEntry {
  service: ServiceInfo
  /** All endpoints, ready or not; consumers filter by `ready`. */
  endpoints: readonly Endpoint[]
}

export type ServiceChange =
  | { type: 'upsert', key: ServiceKey, entry: ServiceEntry, previous?: ServiceEntry }
  | { type: 'delete', key: ServiceKey, previous: ServiceEntry }

/** What consumers of the service map depend on (an interface, not the class). */
export interface ServiceMapView {
  /** True once every source has synced (live, standalone file, or persisted state). */
  hasSynced (): boolean
  get (key: ServiceKey): ServiceEntry | undefined
  /** Immutable snapshot of all services. */
  snapshot (): ReadonlyMap<ServiceKey, ServiceEntry>
  /** Find a Service by ClusterIP. */
  byClusterIP (ip: string): ServiceEntry | undefined
  /**
   * Subscribes to changes. Changes are delivered in batches after the map has
   * been updated; the returned function unsubscribes.
   */
  subscribe (listener: (changes: readonly ServiceChange[]) => void): () => void
}
