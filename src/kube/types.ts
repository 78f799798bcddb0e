/**
 * The narrowed shapes of the Kubernetes objects the agent reads. Only fields
 * we use are declared; everything else on the wire is ignored.
 */

export interface ObjectMeta {
  name: string
  namespace?: string
  uid?: string
  resourceVersion?: string
  /** Bumped by the server on every change of `spec`; status conditions echo it as observedGeneration. */
  generation?: number
  labels?: Record<string, string>
  annotations?: Record<string, string>
  deletionTimestamp?: string
  creationTimestamp?: string
}

export interface KubeObject {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
}

export interface ServicePortSpec {
  name?: string
  protocol?: 'TCP' | 'UDP' | 'SCTP'
  port: number
  targetPort?: number | string
  nodePort?: number
  appProtocol?: string
}

export interface Service extends KubeObject {
  spec: {
    type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName'
    clusterIP?: string
    clusterIPs?: string[]
    externalName?: string
    externalIPs?: string[]
    ports?: ServicePortSpec[]
    selector?: Record<string, string>
    sessionAffinity?: 'None' | 'ClientIP'
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } }
    publishNotReadyAddresses?: boolean
    ipFamilies?: Array<'IPv4' | 'IPv6'>
  }
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string, hostname?: string }> } }
}

export interface ObjectReference {
  kind?: string
  namespace?: string
  name?: string
  uid?: string
}

/** discovery.k8s.io/v1 EndpointSlice. */
export interface EndpointSlice extends KubeObject {
  addressType: 'IPv4' | 'IPv6' | 'FQDN'
  endpoints: Array<{
    addresses: string[]
    conditions?: { ready?: boolean, serving?: boolean, terminating?: boolean }
    hostname?: string
    nodeName?: string
    zone?: string
    targetRef?: ObjectReference
  }> | null
  ports?: Array<{ name?: string, protocol?: 'TCP' | 'UDP' | 'SCTP', port?: number, appProtocol?: string }> | null
}

/** core/v1 Endpoints, the fallback for metaServers without EndpointSlices. */
export interface Endpoints extends KubeObject {
  subsets?: Array<{
    addresses?: Array<{ ip: string, hostname?: string, nodeName?: string, targetRef?: ObjectReference }>
    notReadyAddresses?: Array<{ ip: string, hostname?: string, nodeName?: string, targetRef?: ObjectReference }>
    ports?: Array<{ name?: string, port: number, protocol?: 'TCP' | 'UDP' | 'SCTP', appProtocol?: string }>
  }>
}

export interface Node extends KubeObject {
  spec?: { podCIDR?: string, podCIDRs?: string[], unschedulable?: boolean }
  status?: { addresses?: Array<{ type: string, address: string }> }
}

/** Istio CRDs are kept loosely typed here; their modules narrow them. */
export interface IstioObject extends KubeObject {
  spec: Record<string, unknown>
}

export interface KubeList<T> {
  metadata: { resourceVersion: string, continue?: string }
  items: T[]
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'

export interface WatchEvent<T> {
  type: WatchEventType
  object: T
}

/** Identifies a listable resource: `/api/v1/services`, `/apis/discovery.k8s.io/v1/endpointslices`. */
export interface ResourceType {
  /** '' for the core group. */
  group: string
  version: string
  /** Plural, lower case: 'services'. */
  resource: string
  kind: string
  namespaced: boolean
}

export const RESOURCES = {
  services: { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true },
  endpoints: { group: '', version: 'v1', resource: 'endpoints', kind: 'Endpoints', namespaced: true },
  endpointSlices: { group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices', kind: 'EndpointSlice', namespaced: true },
  nodes: { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false },
  pods: { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true },
  secrets: { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true },
  destinationRules: { group: 'networking.istio.io', version: 'v1alpha3', resource: 'destinationrules', kind: 'DestinationRule', namespaced: true },
  namespaces: { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false },
  gateways: { group: 'networking.istio.io', version: 'v1alpha3', resource: 'gateways', kind: 'Gateway', namespaced: true },
  virtualServices: { group: 'networking.istio.io', version: 'v1alpha3', resource: 'virtualservices', kind: 'VirtualService', namespaced: true },
  leases: { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', namespaced: true }
} as const satisfies Record<string, ResourceType>

/** `namespace/name` (or `name` for cluster-scoped objects): the store key. */
export function objectKey (o: KubeObject): string {
  return o.metadata.namespace !== undefined && o.metadata.namespace !== ''
    ? `${o.metadata.namespace}/${o.metadata.name}`
    : o.metadata.name
}
