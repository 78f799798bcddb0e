/**
 * The gateway's composition root: `edgemesh gateway` loads this file (and the
 * gateway module, undici and node:http2 with it) on its own, so agents do not
 * carry the gateway's code: the agent stays about 8 MB smaller idle.
 */
import { Registry } from 'prom-client'
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { GatewayConfig } from '../config/schema.ts'
import { relayEndpoints } from '../config/relays.ts'
import { DirectDialer, RoutingDialer } from '../mesh/index.ts'
import type { NodeIdentity } from '../config/node-identity.ts'
import { KubeInformer, KubeNotFoundError, RESOURCES } from '../kube/index.ts'
import type { Informer, KubeClient, KubeMetrics, KubeObject, ResourceType } from '../kube/index.ts'
import { BufferReclaimer } from '../net/index.ts'
import { LoadBalancer } from '../loadbalancer/index.ts'
import { EdgeGateway, GATEWAY_API_GROUP, GATEWAY_API_RESOURCES, GatewayApiStatusWriter, GatewayReplicas, listenAddresses, REPLICA_LABEL } from '../gateway/index.ts'
import type { GatewayApiInformers } from '../gateway/index.ts'
import { AppGroup, applyDestinationRules, countersOf, createServiceMap, createStatusServers, labelsOnly, optional } from './agent.ts'
import type { App, AppDeps, ServiceSources } from './agent.ts'
import { createMesh, meshInit } from './mesh.ts'
import type { Mesh } from './mesh.ts'

interface GatewayResources {
  gateways: Informer<KubeObject>
  virtualServices: Informer<KubeObject>
  secrets: Informer<KubeObject>
  pods: Informer<KubeObject>
  gatewayApi: GatewayApiInformers
  /** Only with an API: a standalone file has nowhere to write status to. */
  statusWriter?: GatewayApiStatusWriter
}

const SECRET_KEYS = ['tls.crt', 'tls.key', 'ca.crt', 'cert', 'key', 'cacert']

/** Keeps only what a TLS credential needs of a Secret: other Secrets (tokens, passwords) are not held in memory. */
function credentialOnly (obj: KubeObject): KubeObject {
  const s = obj as KubeObject & { type?: string, data?: Record<string, string> }
  const data: Record<string, string> = {}
  for (const k of SECRET_KEYS) if (s.data?.[k] !== undefined) data[k] = s.data[k]
  return { metadata: { name: s.metadata.name, namespace: s.metadata.namespace, resourceVersion: s.metadata.resourceVersion }, type: s.type, data } as KubeObject
}

/** Istio Gateways, VirtualServices, TLS Secrets, Pods and the Gateway API from the service map's source. */
function gatewayResources (sources: ServiceSources, log: Logger): GatewayResources {
  const ofKind = sources.ofKind
  if (ofKind !== undefined) {
    return {
      gateways: ofKind('Gateway', 'networking.istio.io'),
      virtualServices: ofKind('VirtualService'),
      secrets: ofKind('Secret'),
      pods: ofKind('Pod'),
      gatewayApi: {
        classes: ofKind('GatewayClass', GATEWAY_API_GROUP),
        gateways: ofKind('Gateway', GATEWAY_API_GROUP),
        routes: { HTTPRoute: ofKind('HTTPRoute'), GRPCRoute: ofKind('GRPCRoute'), TLSRoute: ofKind('TLSRoute'), TCPRoute: ofKind('TCPRoute') },
        grants: ofKind('ReferenceGrant'),
        namespaces: ofKind('Namespace')
      }
    }
  }
  if (sources.kube === undefined) throw new Error('the service map has neither an API client nor a standalone file')
  const { client, metrics } = sources.kube
  return {
    gateways: optional(new KubeInformer({ resource: RESOURCES.gateways }, { client, logger: log.forComponent('kube:gateways'), metrics }),
      log, 'Istio Gateways are not served (Istio CRDs not installed?)'),
    virtualServices: optional(new KubeInformer({ resource: RESOURCES.virtualServices }, { client, logger: log.forComponent('kube:virtualservices'), metrics }),
      log, 'Istio VirtualServices are not served (Istio CRDs not installed?)'),
    secrets: new KubeInformer({ resource: RESOURCES.secrets, transform: credentialOnly }, { client, logger: log.forComponent('kube:secrets'), metrics }),
    // Names and labels only: what DestinationRule subsets select on.
    pods: new KubeInformer({ resource: RESOURCES.pods, transform: labelsOnly }, { client, logger: log.forComponent('kube:pods'), metrics }),
    gatewayApi: gatewayApiInformers(client, log, metrics),
    statusWriter: new GatewayApiStatusWriter(async (resource, namespace, name, patch) => await client.patchStatus(resource, namespace, name, patch), log.forComponent('gateway'))
  }
}

/** The Gateway API's informers, each optional: without the CRDs the Gateway API is simply not served. */
function gatewayApiInformers (client: KubeClient, logger: Logger, metrics: KubeMetrics): GatewayApiInformers {
  const make = (resource: ResourceType, transform?: (o: KubeObject) => KubeObject): Informer<KubeObject> => optional(
    new KubeInformer({ resource, ...(transform !== undefined ? { transform } : {}) }, { client, logger: logger.forComponent(`kube:${resource.resource}`), metrics }),
    logger, `Gateway API ${resource.kind}s are not served (Gateway API CRDs not installed?)`)
  const r = GATEWAY_API_RESOURCES
  return {
    classes: make(r.gatewayClasses),
    gateways: make(r.gateways),
    routes: { HTTPRoute: make(r.httpRoutes), GRPCRoute: make(r.grpcRoutes), TLSRoute: make(r.tlsRoutes), TCPRoute: make(r.tcpRoutes) },
    grants: make(r.referenceGrants),
    // Names and labels only: what `allowedRoutes.namespaces.selector` reads.
    namespaces: make(RESOURCES.namespaces, labelsOnly)
  }
}

/**
 * Gateway replicas on other nodes share their listen addresses through
 * Leases in the gateway's namespace (replicas.ts). Without NAMESPACE (the
 * chart sets it) each writes its own addresses, as one replica would.
 */
function gatewayReplicas (sources: ServiceSources, node: NodeIdentity, addresses: readonly string[], log: Logger, onChange: () => void): GatewayReplicas | undefined {
  if (sources.kube === undefined) return undefined
  if (node.namespace === '') {
    log.warn('NAMESPACE is not set: Gateway status names only this gateway\'s addresses; set it (the chart does) when several gateways serve the same Gateways')
    return undefined
  }
  const { client, metrics } = sources.kube
  const leases = RESOURCES.leases
  return new GatewayReplicas({ namespace: node.namespace, nodeName: node.nodeName.replace(/-gateway$/, ''), addresses }, {
    api: {
      create: async (namespace, lease) => await client.create(leases, namespace, lease),
      patch: async (namespace, name, patch) => await client.patch(leases, namespace, name, patch),
      delete: async (namespace, name) => { await client.delete(leases, namespace, name).catch((err: unknown) => { if (!(err instanceof KubeNotFoundError)) throw err }) }
    },
    leases: new KubeInformer({ resource: leases, namespace: node.namespace, labelSelector: REPLICA_LABEL }, { client, logger: log.forComponent('kube:leases'), metrics }),
    logger: log.forComponent('gateway'),
    onChange
  })
}

/**
 * The gateway: the service map, the mesh as a client (node `<NODE_NAME>-gateway`, on
 * `listenPort + 1`, no relay service, no reservations), and the Istio Gateway listeners.
 * `NODE_NAME` itself is the node whose endpoints are dialed directly.
 */
export function createGateway (config: GatewayConfig, node: NodeIdentity, deps: AppDeps): App {
  const log = deps.logger
  const metrics = new Registry()
  const { serviceMap, sources } = createServiceMap(config.kubeAPIConfig, { ...deps, metrics }, { serviceFilterMode: 'FilterIfLabelExists', nodeName: node.nodeName })
  log.info('gateway configured', { node: node.nodeName, mode: node.mode, source: sources.description })
  const m = config.modules
  const components: Component[] = [serviceMap]
  const copied = new BufferReclaimer({ metrics })
  let mesh: Mesh | undefined
  if (m.edgeTunnel.enable) {
    const t = m.edgeTunnel
    const init = meshInit({ ...t, listenPort: t.listenPort + 1 }, node.nodeName, '/var/lib/edgemesh')
    // Relays listen on the agents' port, not the gateway's.
    mesh = createMesh({ logger: log.forComponent('tunnel'), metrics, copied }, { ...init, relayNodes: relayEndpoints(t.relayNodes, t.listenPort), reserve: false, identity: undefined, nat: undefined })
    components.push(mesh)
  }
  let gateway: EdgeGateway | undefined
  if (m.edgeGateway.enable) {
    const g = m.edgeGateway
    const resources = gatewayResources(sources, log)
    const loadBalancer = new LoadBalancer({ ring: g.loadBalancer.consistentHash })
    applyDestinationRules(sources.destinationRules, loadBalancer, log.forComponent('gateway'))
    const hostNode = node.nodeName.replace(/-gateway$/, '')
    const addresses = listenAddresses(g)
    const replicas = resources.statusWriter === undefined ? undefined : gatewayReplicas(sources, node, addresses, log, () => gateway?.resourcesChanged())
    gateway = new EdgeGateway({
      logger: log.forComponent('gateway'),
      metrics,
      serviceMap,
      loadBalancer,
      dialer: new RoutingDialer({ nodeName: hostNode, direct: new DirectDialer(), peers: mesh }),
      ...resources,
      destinationRules: sources.destinationRules,
      copied,
      replicaAddresses: replicas === undefined ? undefined : () => replicas.addresses()
    }, { listenAddresses: addresses })
    const changed = (): void => gateway?.resourcesChanged()
    const api = resources.gatewayApi
    const apiInformers = [api.classes, api.gateways, ...Object.values(api.routes), api.grants, api.namespaces]
    // Pods are read per request (their labels), not rebuilt on.
    for (const informer of [resources.gateways, resources.virtualServices, resources.secrets, sources.destinationRules]) {
      informer.addHandlers({ onAdd: changed, onUpdate: changed, onDelete: changed })
    }
    // A Gateway API object whose generation did not move changed only its status (mostly our own write): nothing to rebuild.
    const specChanged = (previous: KubeObject, current: KubeObject): void => {
      if (previous.metadata.generation === undefined || previous.metadata.generation !== current.metadata.generation) changed()
    }
    for (const informer of apiInformers) informer.addHandlers({ onAdd: changed, onUpdate: specChanged, onDelete: changed })
    // The replicas' Leases before the gateway: its first status write names them all.
    const replicaParts: Component[] = replicas === undefined ? [] : [replicas]
    components.push(sources.destinationRules, resources.secrets, resources.pods, resources.gateways, resources.virtualServices, ...apiInformers, ...replicaParts, gateway)
  } else {
    log.warn('edgeGateway.enable is false: the gateway serves nothing')
  }
  const common = { statusAddress: config.statusAddress, statusPort: config.statusPort }
  components.push(...createStatusServers(common, m.edgeTunnel.metricConfig, { logger: log, metrics, source: () => app }))
  const app = new AppGroup('gateway', components, serviceMap, log, sources.close)
  app.summaries.push(async () => ({ counters: await countersOf(metrics) }))
  if (mesh !== undefined) {
    const t = mesh
    app.summaries.push(() => ({ tunnel: { peerId: t.peerId(), relay: false, addresses: t.addresses(), peers: t.peers() } }))
  }
  if (gateway !== undefined) {
    const g = gateway
    app.summaries.push(() => ({ gateway: g.status() }))
  }
  return app
}
