/**
 * The least-privilege RBAC rules of the agent and the gateway: the one list
 * the Helm chart generator, the static manifests and the tests all read.
 * Upstream grants `networking.istio.io/*`, pods and namespaces; we read only
 * what the informers watch.
 */

/** A Kubernetes rbac.authorization.k8s.io/v1 PolicyRule. */
export interface PolicyRule {
  readonly apiGroups: readonly string[]
  readonly resources: readonly string[]
  readonly verbs: readonly string[]
}

export const READ_VERBS = Object.freeze(['get', 'list', 'watch'] as const)

function rule (apiGroups: string[], resources: string[], verbs: readonly string[] = READ_VERBS): PolicyRule {
  return Object.freeze({ apiGroups: Object.freeze(apiGroups), resources: Object.freeze(resources), verbs: Object.freeze([...verbs]) })
}

/** ClusterRole rules of edgemesh-agent. */
export const AGENT_RULES: readonly PolicyRule[] = Object.freeze([
  rule([''], ['services', 'endpoints', 'nodes']),
  rule(['discovery.k8s.io'], ['endpointslices']),
  // DestinationRules only: Istio Gateways and VirtualServices are the gateway's (`edgemesh gateway`), not the agent's.
  rule(['networking.istio.io'], ['destinationrules'])
])

/** Role rules of edgemesh-agent in its own namespace: the edge CNI's pod block claims (Leases), claimed and watched for the routing plane. */
export const AGENT_NAMESPACE_RULES: readonly PolicyRule[] = Object.freeze([
  rule(['coordination.k8s.io'], ['leases'], ['get', 'list', 'watch', 'create', 'delete'])
])

/** ClusterRole rules of edgemesh-gateway: what its informers watch, Secrets (TLS credentials) included, no Nodes; writes only Gateway API status. */
export const GATEWAY_RULES: readonly PolicyRule[] = Object.freeze([
  rule([''], ['services', 'endpoints', 'secrets']),
  rule(['discovery.k8s.io'], ['endpointslices']),
  rule(['networking.istio.io'], ['destinationrules', 'gateways', 'virtualservices']),
  // Pods for DestinationRule subsets (labels), namespaces for Gateway API `allowedRoutes` selectors; then the status the gateway writes back.
  rule([''], ['pods', 'namespaces']),
  rule(['gateway.networking.k8s.io'], ['gatewayclasses', 'gateways', 'httproutes', 'grpcroutes', 'tlsroutes', 'tcproutes', 'referencegrants']),
  rule(['gateway.networking.k8s.io'], ['gatewayclasses/status', 'gateways/status', 'httproutes/status', 'grpcroutes/status', 'tlsroutes/status', 'tcproutes/status'], ['patch'])
])

/** Role rules of edgemesh-gateway in its own namespace: each gateway replica's Lease with its listen addresses (gateway/replicas.ts). */
export const GATEWAY_NAMESPACE_RULES: readonly PolicyRule[] = Object.freeze([
  rule(['coordination.k8s.io'], ['leases'], ['get', 'list', 'watch', 'create', 'patch', 'delete'])
])

export interface ClusterRoleManifest {
  apiVersion: 'rbac.authorization.k8s.io/v1'
  kind: 'ClusterRole'
  metadata: { name: string, labels?: Record<string, string> }
  rules: Array<{ apiGroups: string[], resources: string[], verbs: string[] }>
}

/** A ClusterRole object with mutable copies of `rules`, ready to serialise. */
export function clusterRole (name: string, rules: readonly PolicyRule[], labels?: Record<string, string>): ClusterRoleManifest {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: labels !== undefined ? { name, labels: { ...labels } } : { name },
    rules: rules.map(r => ({ apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] }))
  }
}
