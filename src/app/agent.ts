/**
 * The composition root: the only place that knows every module. It builds
 * them, hands each its dependencies and returns them as one lifecycle group
 * (declared order = start order; stop runs in reverse).
 */
import { join } from 'node:path'
import { LifecycleGroup } from '../lifecycle/group.ts'
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { AgentConfig, KubeAPIConfig } from '../config/schema.ts'
import { DirectDialer, RoutingDialer } from '../mesh/index.ts'
import type { EndpointDialer } from '../mesh/index.ts'
import type { NodeIdentity } from '../config/node-identity.ts'
import { KubeClient, KubeInformer, KubeMetrics, KubeNotFoundError, KubeResourceNotFoundError, objectPath, resolveKubeConnection, RESOURCES } from '../kube/index.ts'
import { EndpointSliceSource } from '../kube/endpoint-slice-source.ts'
import type { Informer, KubeObject, Service } from '../kube/index.ts'
import { ServiceMap, FileStateStore, createStandaloneInformers, compactService, compactSlice } from '../servicemap/index.ts'
import type { CompactService, CompactSlice, ServiceFilterMode } from '../servicemap/index.ts'
import { Registry } from 'prom-client'
import { BridgeDevice, BufferReclaimer, IpHostNet, LocalSources } from '../net/index.ts'
import type { CopiedStreams } from '../net/index.ts'
import { DnsServer, dnsServerInit } from '../dns/index.ts'
import { StatusServer } from '../observability/status-server.ts'
import type { StatusSource } from '../observability/status-server.ts'
import type { StatusDocument } from '../observability/status.ts'
import { EdgeProxy, FallbackInterceptor, IptablesInterceptor, NftInterceptor, NoInterceptor, runNft, Socks5Server } from '../proxy/index.ts'
import type { Interceptor } from '../proxy/index.ts'
import { LoadBalancer, parseDestinationRule } from '../loadbalancer/index.ts'
import { createMesh, meshInit, relayWatcher } from './mesh.ts'
import { kubeLeaseApi } from '../cni/blocks.ts'
import type { LeaseApi } from '../cni/blocks.ts'
import type { NodeFacts } from '../cni/pod-block.ts'
import { createPodNetwork, podCidrs } from './cni.ts'

export interface AppDeps {
  logger: Logger
  env: NodeJS.ProcessEnv
  /** The config file the agent was started with: watched for `relayNodes` changes. */
  configFile?: string
}

/** A running agent or gateway: its lifecycle plus the views other parts (CLI, tests) read. */
export interface App extends Component {
  readonly serviceMap: ServiceMap
  /** What /status serves: readiness, services, proxy rules and listeners, tunnel peers, counters. */
  status (): Promise<StatusDocument>
}

export interface ServiceSources {
  services: Informer<CompactService>
  endpointSlices: Informer<CompactSlice>
  /** Closes what the sources share (an HTTP agent), after they stopped. */
  close: () => void
  description: string
  /** Istio DestinationRules from the same source; started only by the proxy. */
  destinationRules: Informer<KubeObject>
  /** A node's InternalIP (else ExternalIP) from the API, null when there is no such node; absent without an API. */
  nodeAddress?: (nodeName: string) => Promise<string | null>
  /** A node's labels and pod CIDRs, null when there is no such node; absent without an API. */
  nodeFacts?: (nodeName: string) => Promise<NodeFacts | null>
  /** Leases (pod block claims of the edge CNI); absent without an API. */
  leases?: LeaseApi
  /** The API client the sources share, for the gateway's own informers (src/app/gateway.ts); absent with a standalone file. */
  kube?: { client: KubeClient, metrics: KubeMetrics }
  /** Objects of one kind from the standalone file (`group` tells Istio's Gateway from the Gateway API's); absent with an API. */
  ofKind?: (kind: string, group?: string) => Informer<KubeObject>
}

/** Keeps an object's name, namespace and labels: Pods and Namespaces are selected by label, nothing else of them is read. */
export function labelsOnly (o: KubeObject): KubeObject {
  const m = o.metadata
  return { metadata: { name: m.name, namespace: m.namespace, resourceVersion: m.resourceVersion, ...(m.labels !== undefined ? { labels: m.labels } : {}) } }
}

/** Asks the API for a node's address when the SOCKS5 proxy needs it, cached for a minute (no Node informer: 10k nodes would cost memory for a rarely used feature). */
function nodeAddressLookup (client: KubeClient): (nodeName: string) => Promise<string | null> {
  const cache = new Map<string, { ip: string | null, at: number }>()
  return async (nodeName) => {
    const hit = cache.get(nodeName)
    if (hit !== undefined && Date.now() - hit.at < 60_000) return hit.ip
    let ip: string | null = null
    try {
      const node = await client.get<{ status?: { addresses?: Array<{ type: string, address: string }> } }>(objectPath(RESOURCES.nodes, undefined, nodeName))
      const addresses = node.status?.addresses ?? []
      ip = (addresses.find(a => a.type === 'InternalIP') ?? addresses.find(a => a.type === 'ExternalIP'))?.address ?? null
    } catch (err) {
      if (!(err instanceof KubeNotFoundError)) throw err
    }
    if (cache.size > 1000) cache.clear()
    cache.set(nodeName, { ip, at: Date.now() })
    return ip
  }
}

/**
 * Where Services and EndpointSlices come from: a standalone YAML file, or an
 * API server (metaServer on edge nodes, in-cluster on cloud nodes, or a
 * kubeconfig). `KUBECONFIG` in the environment is used when the file names
 * neither `master` nor `kubeConfig` (EdgeMesh-TS; upstream ignores it).
 */
function createServiceSources (kubeApi: KubeAPIConfig, deps: AppDeps & { metrics: Registry }): ServiceSources {
  if (kubeApi.standaloneFile !== '') {
    const log = deps.logger.forComponent('standalone')
    const { services, endpointSlices, destinationRules, ofKind } = createStandaloneInformers(kubeApi.standaloneFile, log)
    return {
      services,
      endpointSlices,
      destinationRules,
      close: () => {},
      description: `standalone file ${kubeApi.standaloneFile}`,
      ofKind
    }
  }
  const settings = kubeApi.master === '' && kubeApi.kubeConfig === '' && (deps.env.KUBECONFIG ?? '') !== ''
    ? { ...kubeApi, kubeConfig: deps.env.KUBECONFIG as string }
    : kubeApi
  const connection = resolveKubeConnection(settings, { env: deps.env })
  const client = new KubeClient(connection)
  const metrics = new KubeMetrics(deps.metrics)
  // Informers store compact models, not raw objects: the raw JSON is dropped on arrival.
  const services = new KubeInformer<CompactService>({ resource: RESOURCES.services, transform: raw => compactService(raw as unknown as Service) },
    { client, logger: deps.logger.forComponent('kube:services'), metrics })
  const endpointSlices = new EndpointSliceSource({ client, logger: deps.logger.forComponent('kube:endpointslices'), metrics },
    { transform: compactSlice })
  // The Istio CRDs may not be installed: then the rules are skipped, not the agent.
  const destinationRules = optional(new KubeInformer({ resource: RESOURCES.destinationRules }, { client, logger: deps.logger.forComponent('kube:destinationrules'), metrics }),
    deps.logger, 'DestinationRules are not served (Istio CRDs not installed?); every service uses round robin or its session affinity')
  const nodeFacts = async (name: string): Promise<NodeFacts | null> => {
    try {
      const n = await client.get<KubeObject & { spec?: { podCIDR?: string, podCIDRs?: string[] } }>(objectPath(RESOURCES.nodes, undefined, name))
      return { labels: n.metadata.labels ?? {}, podCIDRs: n.spec?.podCIDRs ?? (n.spec?.podCIDR !== undefined ? [n.spec.podCIDR] : []) }
    } catch (err) {
      if (err instanceof KubeNotFoundError) return null
      throw err
    }
  }
  return { services, endpointSlices, destinationRules, kube: { client, metrics }, nodeAddress: nodeAddressLookup(client), nodeFacts, leases: kubeLeaseApi(client), close: () => client.close(), description: connection.description }
}

export class AppGroup extends LifecycleGroup implements App, StatusSource {
  readonly serviceMap: ServiceMap
  /** Filled by the composition root: module summaries for /status. */
  readonly summaries: Array<() => Partial<StatusDocument> | Promise<Partial<StatusDocument>>> = []
  readonly #log: Logger
  readonly #onStopped: () => void
  #unsubscribe: (() => void) | undefined
  #lastChange: number | undefined

  constructor (name: string, components: Component[], serviceMap: ServiceMap, log: Logger, onStopped: () => void) {
    super(name, components, log)
    this.serviceMap = serviceMap
    this.#log = log
    this.#onStopped = onStopped
  }

  override async start (): Promise<void> {
    // Say once per source (persisted, then live) how many services are known.
    let announced: string | undefined
    this.#unsubscribe = this.serviceMap.subscribe(() => {
      this.#lastChange = Date.now()
      const source = this.serviceMap.source()
      if (source === announced) return
      announced = source
      this.#log.info('services synced', { services: this.serviceMap.snapshot().size, source })
    })
    await super.start()
  }

  setLogLevel (level: string): boolean {
    if (!['debug', 'info', 'warn', 'error'].includes(level)) return false
    this.#log.setLevel(level as Parameters<Logger['setLevel']>[0])
    return true
  }

  async status (): Promise<StatusDocument> {
    const out: StatusDocument = {
      ready: this.isReady(),
      notReady: this.notReady(),
      services: { count: this.serviceMap.snapshot().size, source: this.serviceMap.source(), synced: this.serviceMap.hasSynced(), lastChange: this.#lastChange }
    }
    for (const s of this.summaries) Object.assign(out, await s())
    return out
  }

  override async stop (options?: Parameters<Component['stop']>[0]): Promise<void> {
    await super.stop(options)
    this.#unsubscribe?.()
    this.#onStopped()
  }
}

export function createServiceMap (kubeApi: KubeAPIConfig, deps: AppDeps & { metrics: Registry }, init: { serviceFilterMode: ServiceFilterMode, nodeName: string, stateFile?: string | undefined }): { serviceMap: ServiceMap, sources: ServiceSources } {
  const sources = createServiceSources(kubeApi, deps)
  const serviceMap = new ServiceMap({
    logger: deps.logger.forComponent('servicemap'),
    services: sources.services,
    endpointSlices: sources.endpointSlices,
    metrics: deps.metrics,
    persistence: init.stateFile !== undefined ? new FileStateStore(init.stateFile) : undefined
  }, { serviceFilterMode: init.serviceFilterMode, nodeName: init.nodeName })
  return { serviceMap, sources }
}

function interceptorFor (mode: 'nftables' | 'iptables' | 'none', log: Logger): Interceptor {
  if (mode === 'none') return new NoInterceptor()
  if (mode === 'iptables') return new IptablesInterceptor({ logger: log })
  return new FallbackInterceptor({
    logger: log,
    primary: new NftInterceptor({ logger: log }),
    fallback: () => new IptablesInterceptor({ logger: log }),
    probe: async () => await runNft(['list', 'tables'])
  })
}

/** The proxy, and the DestinationRule informer that feeds its policies when an API server is the source. */
export function createProxy (config: AgentConfig, node: NodeIdentity, deps: AppDeps & { metrics: Registry, serviceMap: ServiceMap, destinationRules: Informer<KubeObject>, peers: EndpointDialer | undefined, copied: CopiedStreams }): { proxy: EdgeProxy, components: Component[] } {
  const p = config.modules.edgeProxy
  const log = deps.logger.forComponent('proxy')
  // Endpoints on other nodes go through the peers; without a tunnel every endpoint is dialed directly.
  const dialer = new RoutingDialer({ nodeName: node.nodeName, direct: new DirectDialer(), peers: deps.peers })
  const proxy = new EdgeProxy({
    logger: log,
    metrics: deps.metrics,
    serviceMap: deps.serviceMap,
    loadBalancer: new LoadBalancer({ ring: p.loadBalancer.consistentHash }),
    interceptor: interceptorFor(p.interception, log),
    dialer,
    isDirect: nodeName => dialer.isDirect(nodeName),
    copied: deps.copied
  }, {
    // Without interception nothing DNATs to the bridge IP: clients (demo, tests) connect to loopback listeners.
    listenIp: p.interception === 'none' ? '127.0.0.1' : config.commonConfig.bridgeDeviceIP,
    serviceFilterMode: p.serviceFilterMode,
    // Nothing is in the kernel without interception: every port needs its listener.
    kernelPath: p.kernelPath && p.interception !== 'none',
    udpIdleTimeoutMs: p.udpIdleTimeout * 1000
  })
  applyDestinationRules(deps.destinationRules, proxy, log)
  // Rules first: the proxy's first sync then already knows the policies.
  return { proxy, components: [deps.destinationRules, proxy] }
}

/** Feeds DestinationRules to whatever holds the load balancer (the proxy, the gateway); a rule that does not parse is dropped and logged. */
export function applyDestinationRules (rules: Informer<KubeObject>, target: { setRule: (r: ReturnType<typeof parseDestinationRule>) => unknown, deleteRule: (ns: string, name: string) => unknown }, log: Logger): void {
  const failed = (err: unknown): void => log.warn('DestinationRule not applied', { err })
  const settle = (result: unknown): void => { if (result instanceof Promise) result.catch(failed) }
  const apply = (obj: unknown): void => {
    try {
      settle(target.setRule(parseDestinationRule(obj)))
    } catch (err) {
      log.warn('DestinationRule ignored', { err })
    }
  }
  rules.addHandlers({
    onAdd: apply,
    onUpdate: (_, obj) => apply(obj),
    onDelete: obj => { settle(target.deleteRule(obj.metadata.namespace ?? '', obj.metadata.name)) }
  })
}

/** An informer whose resource type is not served (Istio CRDs absent) is logged and left off, not fatal; refusals are retried by the informer. */
export function optional<T extends KubeObject> (component: Informer<T>, log: Logger, why: string): Informer<T> {
  let running = false
  return {
    name: component.name,
    addHandlers: h => component.addHandlers(h),
    hasSynced: () => component.hasSynced(),
    list: () => component.list(),
    get: key => component.get(key),
    async start () {
      try {
        await component.start()
        running = true
      } catch (err) {
        if (!(err instanceof KubeResourceNotFoundError)) throw err
        log.warn(why, { err })
      }
    },
    async stop (options) {
      if (running) await component.stop(options)
      running = false
    }
  }
}

export function createAgent (config: AgentConfig, node: NodeIdentity, deps: AppDeps): App {
  const log = deps.logger
  // One registry for every module, served by the status server's /metrics.
  const metrics = new Registry()
  const { serviceMap, sources } = createServiceMap(config.kubeAPIConfig, { ...deps, metrics }, {
    serviceFilterMode: config.modules.edgeProxy.serviceFilterMode,
    nodeName: node.nodeName,
    // The standalone file is its own persistence.
    stateFile: config.kubeAPIConfig.standaloneFile === '' ? join(config.commonConfig.stateDir, 'servicemap.json') : undefined
  })
  log.info('agent configured', { node: node.nodeName, namespace: node.namespace, mode: node.mode, source: sources.description })
  const m = config.modules
  // modules: created here in dependency order (service map first).
  const components: Component[] = [serviceMap]
  // Every module that copies between sockets reports to it (see src/net/buffer-reclaimer.ts).
  const copied = new BufferReclaimer({ metrics })
  const { bridgeDeviceName, bridgeDeviceIP } = config.commonConfig
  const intercept = m.edgeProxy.enable && m.edgeProxy.interception !== 'none'
  // A loopback bridge IP (local demo, tests without root) needs no interface of ours.
  if ((m.edgeDNS.enable || intercept) && !bridgeDeviceIP.startsWith('127.')) {
    components.push(new BridgeDevice({ logger: log.forComponent('bridge-device'), host: new IpHostNet() }, { name: bridgeDeviceName, address: bridgeDeviceIP }))
  }
  // Hosts that route the bridge address via this node are not its clients (loopback: nobody else can reach it).
  const clients = bridgeDeviceIP.startsWith('127.') ? undefined : new LocalSources()
  if (m.edgeDNS.enable) {
    components.push(new DnsServer({ logger: log.forComponent('dns'), metrics, serviceMap, clients }, dnsServerInit(m.edgeDNS, bridgeDeviceIP)))
  }
  const mesh = m.edgeTunnel.enable ? createMesh({ logger: log.forComponent('tunnel'), metrics, copied }, meshInit(m.edgeTunnel, node.nodeName, config.commonConfig.stateDir, podCidrs(config))) : undefined
  if (mesh !== undefined) {
    components.push(mesh)
    const file = m.edgeTunnel.configPath !== '' ? m.edgeTunnel.configPath : deps.configFile
    if (file !== undefined) components.push(relayWatcher(file, mesh, { logger: log.forComponent('tunnel'), env: deps.env }))
  }
  let proxy: EdgeProxy | undefined
  if (m.edgeProxy.enable) {
    const created = createProxy(config, node, { ...deps, metrics, serviceMap, destinationRules: sources.destinationRules, peers: mesh, copied })
    proxy = created.proxy
    components.push(...created.components)
    if (m.edgeProxy.socks5Proxy.enable) {
      const lookup = sources.nodeAddress
      components.push(new Socks5Server({
        logger: log.forComponent('socks5'),
        metrics,
        dialer: new RoutingDialer({ nodeName: node.nodeName, direct: new DirectDialer(), peers: mesh }),
        nodeAddress: async name => lookup === undefined ? undefined : await lookup(name),
        copied,
        clients
      }, {
        listenIp: m.edgeProxy.interception === 'none' ? '127.0.0.1' : bridgeDeviceIP,
        port: m.edgeProxy.socks5Proxy.listenPort,
        nodeName: node.nodeName
      }))
    }
  }
  const podNetwork = m.edgeCNI.enable
    ? createPodNetwork(config, node, { logger: log, metrics, leases: sources.leases, nodeFacts: sources.nodeFacts, kube: sources.kube, channels: mesh?.channels, copied })
    : undefined
  if (podNetwork !== undefined) components.push(...podNetwork.components)
  // The status server reads the group it belongs to; it is asked only after start.
  components.push(...createStatusServers(config.commonConfig, m.edgeTunnel.metricConfig, { logger: log, metrics, source: () => app }))
  const app = new AppGroup('agent', components, serviceMap, log, sources.close)
  if (podNetwork !== undefined) {
    const n = podNetwork
    app.summaries.push(() => ({ cni: n.status() }))
  }
  // Counters for `edgemesh status`, read from the same registry /metrics serves.
  app.summaries.push(async () => ({ counters: await countersOf(metrics) }))
  if (mesh !== undefined) {
    const t = mesh.tunnel
    app.summaries.push(() => {
      const report = mesh.nat?.report()
      const punched = mesh.directPaths?.status() ?? []
      const portMapping = mesh.directPaths?.portMapping()
      const nat = report === undefined ? undefined : { ...report, ...(punched.length > 0 ? { peers: punched } : {}), ...(portMapping !== undefined ? { portMapping } : {}) }
      return { tunnel: { peerId: t.peerId(), relay: t.isRelay, addresses: t.addresses(), peers: mesh.peers(), ...(mesh.failure() !== undefined ? { error: mesh.failure() } : {}) }, ...(nat !== undefined ? { nat } : {}) }
    })
  }
  if (proxy !== undefined) {
    const p = proxy
    app.summaries.push(() => {
      let kernel = 0
      for (const r of p.rules().values()) if (r.target.kind === 'kernel') kernel++
      const listeners: Record<string, number> = {}
      for (const [key, r] of p.rules()) if (r.target.kind === 'userspace') listeners[key] = r.target.listener.port
      return { proxy: { servicePorts: p.rules().size, kernel, userspace: p.rules().size - kernel, listeners } }
    })
  }
  return app
}

const COUNTERS: Record<string, string> = {
  dnsQueries: 'edgemesh_dns_queries_total',
  proxyConnections: 'edgemesh_proxy_connections_total',
  proxyConnectErrors: 'edgemesh_proxy_connect_errors_total',
  tunnelStreams: 'edgemesh_tunnel_streams_total',
  dataPathConnections: 'edgemesh_datapath_connections_total'
}

export async function countersOf (metrics: Registry): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const [key, name] of Object.entries(COUNTERS)) {
    const m = metrics.getSingleMetric(name)
    if (m === undefined) continue
    out[key] = (await m.get()).values.reduce((sum, v) => sum + v.value, 0)
  }
  return out
}

/** The status server (last to start, first to stop) and, when upstream's metricConfig asks for it, a /metrics listener (on all interfaces unless `address` says otherwise). */
export function createStatusServers (common: { statusAddress: string, statusPort: number }, metricConfig: { enable: boolean, port: number, address: string }, deps: { logger: Logger, metrics: Registry, source: () => StatusSource }): Component[] {
  const out: Component[] = []
  if (common.statusPort !== 0) out.push(new StatusServer({ ...deps, logger: deps.logger.forComponent('status') }, { address: common.statusAddress, port: common.statusPort }))
  if (metricConfig.enable) out.push(new StatusServer({ ...deps, logger: deps.logger.forComponent('metrics') }, { address: metricConfig.address, port: metricConfig.port, metricsOnly: true }))
  return out
}
