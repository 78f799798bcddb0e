/**
 * The one declaration of the agent's and gateway's configuration files
 * (`edgemesh-agent.yaml`, `edgemesh-gateway.yaml`). From it come the
 * TypeScript types, the defaults (upstream EdgeMesh v1.17 *code* defaults),
 * validation and docs/config.md. Keys and nesting match upstream so its files
 * load unchanged; keys marked "EdgeMesh-TS" are our additions.
 *
 * Runtime facts (node name, namespace, detected mode) are not configuration:
 * see node-identity.ts.
 */
import { Type } from '@sinclair/typebox'
import type { Static, TLiteral, TSchema, TObject, TProperties, TUnion } from '@sinclair/typebox'

/** Custom checks keyed by `x-check` on a schema; implemented in validate.ts. */
export type CheckName = 'absolutePath' | 'ifName' | 'ipv4' | 'ip' | 'hostOrIp' | 'relayAddress' | 'hostPort' | 'cidr' | 'nicList' | 'ipOrCidrList'

interface Extra {
  /** Shown in docs instead of the default when it depends on the running mode. */
  defaultDoc?: string
  check?: CheckName
  /** Item check for arrays. */
  itemCheck?: CheckName
  ours?: boolean
  /** Accepted so upstream files load, but nothing reads it; test/unit/config/leaves.test.ts keeps this honest. */
  noEffect?: boolean
  /** Overrides MAX_STRING for a string. */
  maxLength?: number
}

/** Bounds that keep a hostile or broken file cheap to refuse; upstream files are far below them. */
export const MAX_STRING = 4096
export const MAX_LIST_ITEM = 512
export const MAX_LIST = 256
export const MAX_RELAY_NODES = 1000
/** IFNAMSIZ - 1: longer names fail in `ip link`. */
export const MAX_IFNAME = 15

/** Leads the description of every key marked `noEffect` (`x-no-effect` in the schema). */
export const NO_EFFECT = 'Accepted for compatibility, no effect.'

function ext (description: string, extra: Extra = {}): Record<string, unknown> {
  const text = extra.noEffect === true ? `${NO_EFFECT} ${description}` : description
  return {
    description: extra.ours === true ? `${text} (EdgeMesh-TS)` : text,
    ...(extra.noEffect === true ? { 'x-no-effect': true } : {}),
    ...(extra.defaultDoc !== undefined ? { 'x-default-doc': extra.defaultDoc } : {}),
    ...(extra.check !== undefined ? { 'x-check': extra.check } : {}),
    ...(extra.itemCheck !== undefined ? { 'x-item-check': extra.itemCheck } : {})
  }
}

const str = (def: string, description: string, extra?: Extra) =>
  Type.String({ default: def, maxLength: extra?.maxLength ?? MAX_STRING, ...ext(description, extra) })
const bool = (def: boolean, description: string, extra?: Extra) =>
  Type.Boolean({ default: def, ...ext(description, extra) })
const int = (def: number, description: string, min: number, max: number, extra?: Extra) =>
  Type.Integer({ default: def, minimum: min, maximum: max, ...ext(description, extra) })
const port = (def: number, description: string, extra?: Extra) => int(def, description, 1, 65535, extra)
const num = (def: number, description: string, min: number, extra?: Extra) =>
  Type.Number({ default: def, minimum: min, ...ext(description, extra) })
// The cast restores the literal types that Array.map widens to string.
const oneOf = <const T extends readonly string[]>(values: T, def: T[number], description: string, extra?: Extra) =>
  Type.Union(values.map(v => Type.Literal(v)), { default: def, ...ext(description, extra) }) as unknown as TUnion<Array<TLiteral<T[number]>>>
const strList = (description: string, extra?: Extra) =>
  Type.Array(Type.String({ maxLength: MAX_LIST_ITEM }), { default: [], maxItems: MAX_LIST, ...ext(description, extra) })
const obj = <P extends TProperties>(properties: P, description: string, extra?: Extra): TObject<P> =>
  Type.Object(properties, { default: {}, ...ext(description, extra) })

export const RUNNING_MODES = ['EdgeMode', 'CloudMode', 'ManualMode'] as const
export type RunningMode = typeof RUNNING_MODES[number]

const MetaServerSecurity = obj({
  requireAuthorization: bool(false, 'Talk to a KubeEdge ≥ 1.12 metaServer over TLS (http:// becomes https://).'),
  insecureSkipTLSVerify: bool(false, 'Skip verifying the metaServer certificate.'),
  tlsCaFile: str('/etc/edgemesh/metaserver/rootCA.crt', 'CA bundle that signs the metaServer certificate.'),
  tlsCertFile: str('/etc/edgemesh/metaserver/server.crt', 'Client certificate for the metaServer.'),
  tlsPrivateKeyFile: str('/etc/edgemesh/metaserver/server.key', 'Client key for the metaServer.')
}, 'TLS settings for the metaServer.')

export const KubeAPIConfig = obj({
  master: str('', 'API server address; non-empty selects manual mode.'),
  contentType: str('application/vnd.kubernetes.protobuf', 'Requested content type; the agent always speaks JSON.', {
    noEffect: true,
    defaultDoc: '`application/json` in EdgeMode, `application/vnd.kubernetes.protobuf` otherwise'
  }),
  qps: int(100, 'Client-side request rate limit (requests per second).', 1, 100_000),
  burst: int(200, 'Client-side request burst.', 1, 100_000),
  kubeConfig: str('', 'Absolute path of a kubeconfig file; non-empty selects manual mode.', { check: 'absolutePath' }),
  mode: Type.Optional(Type.Union(RUNNING_MODES.map(v => Type.Literal(v)) as Array<TLiteral<RunningMode>>, ext(
    'Running mode. Detected (KUBERNETES_PORT set → CloudMode, else EdgeMode; master/kubeConfig → ManualMode); setting it forces the mode.',
    { defaultDoc: 'detected' }))),
  metaServer: obj({
    server: str('http://127.0.0.1:10550', 'Address of the edgecore metaServer (the edge Kube-API endpoint).'),
    security: MetaServerSecurity
  }, 'The edge Kube-API endpoint served by edgecore.'),
  deleteKubeConfig: bool(false, 'Upstream deletes the kubeconfig file it wrote; the agent never writes one.', { noEffect: true }),
  standaloneFile: str('', 'Path of a YAML file of Services and EndpointSlices to use instead of an API server (watched for changes).', { ours: true })
}, 'How the agent reaches the Kubernetes API.')

const PprofConfig = obj({
  enableProfiling: bool(false, 'Upstream\'s Go pprof server (not served; use `node --inspect`).', { noEffect: true }),
  profilingAddress: str('', 'Upstream\'s Go pprof address.', { noEffect: true }),
  profilingPort: int(0, 'Upstream\'s Go pprof port.', 0, 65535, { noEffect: true })
}, 'Go pprof settings of upstream.', { noEffect: true })

const ConsistentHash = obj({
  partitionCount: int(100, 'Partitions of the consistent hash ring.', 1, 1_000_000),
  replicationFactor: int(10, 'Virtual nodes per endpoint on the ring.', 1, 10_000),
  load: num(1.25, 'Bounded-load factor of the ring.', 1)
}, 'Consistent-hash ring parameters (DestinationRule consistentHash).')

const LoadBalancer = obj({ consistentHash: ConsistentHash }, 'Load balancer settings.')

const RelayNode = Type.Object({
  nodeName: Type.String({ minLength: 1, maxLength: 253, description: 'Kubernetes node name of the relay.' }),
  advertiseAddress: Type.Array(Type.String({ maxLength: MAX_LIST_ITEM }), { default: [], maxItems: MAX_LIST, ...ext('Addresses other nodes dial to reach this relay, on `listenPort`; `host:port` names another port (EdgeMesh-TS).', { itemCheck: 'relayAddress' }) })
}, { description: 'A relay node.' })

export const EdgeTunnelConfig = obj({
  enable: bool(false, 'Run the libp2p tunnel.'),
  listenPort: port(20006, 'Tunnel listen port (the gateway listens on listenPort+1).'),
  transport: oneOf(['tcp', 'ws'] as const, 'tcp', 'Only tcp is used, whatever the value. (Upstream also lists quic, which cannot work with the PSK that is on by default.)', { noEffect: true }),
  rendezvous: str('EDGEMESH_PLAYGOUND', 'mDNS service name and DHT rendezvous key (upstream spelling kept).'),
  relayNodes: Type.Array(RelayNode, { default: [], maxItems: MAX_RELAY_NODES, ...ext('Relay nodes; reloaded from the config file without restart.') }),
  enableIpfsLog: bool(false, 'Upstream\'s verbose libp2p logs.', { noEffect: true }),
  maxCandidates: int(15, 'Upstream\'s maximum of relay candidates.', 0, 1000, { noEffect: true }),
  heartbeatPeriod: int(120, 'Seconds between relay reconnection checks.', 1, 86_400),
  finderPeriod: int(60, 'Seconds between DHT lookups of the `rendezvous` (with `dht.enable`).', 1, 86_400),
  psk: obj({
    enable: bool(true, 'Protect the tunnel with a pre-shared key (private network).'),
    path: str('/etc/edgemesh/psk', 'File holding the pre-shared key.')
  }, 'Pre-shared key.'),
  tunnelLimitConfig: obj({
    enable: bool(true, 'Apply `tunnelBaseStreamIn`; off leaves the default of 10240.'),
    tunnelBaseStreamIn: int(10240, 'Inbound libp2p proxy streams at once, per connection.', 1, 10_000_000),
    tunnelBaseStreamOut: int(10240, 'Upstream\'s limit of outbound proxy streams.', 1, 10_000_000, { noEffect: true }),
    tunnelPeerBaseStreamIn: int(1024, 'Upstream\'s limit of inbound streams per peer.', 1, 10_000_000, { noEffect: true }),
    tunnelPeerBaseStreamOut: int(1024, 'Upstream\'s limit of outbound streams per peer.', 1, 10_000_000, { noEffect: true })
  }, 'Stream limits.'),
  listenInterfaces: str('*', 'Upstream\'s interfaces to listen on; the tunnel listens on all.', { check: 'nicList', noEffect: true }),
  extraFilteredInterfaces: str('', 'Upstream\'s interface name prefixes never to listen on.', { noEffect: true }),
  metricConfig: obj({
    enable: bool(false, 'Serve Prometheus metrics (`/metrics` only). Its series name services, namespaces and nodes: bind it to an address only your Prometheus reaches, or keep it off and scrape the status server.'),
    port: port(9999, 'Metrics port.'),
    address: str('0.0.0.0', 'Address the metrics port listens on (upstream listens on all).', { ours: true, check: 'ipv4' })
  }, 'Metrics endpoint.'),
  configPath: str('', 'File watched for relayNodes changes.', { defaultDoc: 'the config file path' }),
  identity: oneOf(['compat', 'secure'] as const, 'compat',
    'Node keys: `compat` derives them from node names as upstream does (Go EdgeMesh peers agree, but anyone who knows a node name can compute its key); `secure` uses a random key kept in stateDir/tunnel-identity.key (0600), learns peers through the relays and pins them in stateDir/tunnel-peers.json (EdgeMesh-TS peers only).', { ours: true }),
  dataPath: obj({
    enable: bool(true, 'Carry proxied TCP between EdgeMesh-TS agents over TLS 1.3 (keyed by the PSK) instead of libp2p streams, spliced by relays; Go peers keep the libp2p proxy protocol. Needs `psk.enable`.', { ours: true }),
    port: int(0, 'TCP port of a data path listener of its own. 0: the data path shares the tunnel port (`listenPort`), told apart from libp2p by its first bytes, so a relay needs only that one port open, as upstream. Peers learn the port from each other either way.', 0, 65535, { ours: true }),
    poolSize: int(2, 'Idle connections kept per peer, already through their handshake; a peer whose pool runs empty keeps up to four times as many until it has not for 30 s.', 0, 64, { ours: true }),
    parkedPerRelay: int(2, 'Idle connections a node keeps parked on each relay, so peers can reach it through that relay; while joins use them up faster, up to 8.', 1, 64, { ours: true }),
    relayLimits: obj({
      maxNodes: int(10_000, 'Nodes a relay keeps parked connections for.', 1, 1_000_000, { ours: true }),
      maxParkedPerNode: int(8, 'Parked connections a relay accepts per node.', 1, 1024, { ours: true }),
      maxSplicesPerNode: int(256, 'Connections a relay splices at once for one joining node (per-peer fairness).', 1, 65_536, { ours: true })
    }, 'What a relay accepts (relay nodes only).', { ours: true }),
    holePunch: obj({
      enable: bool(true, 'When a peer is reached through a relay, punch a direct UDP path to it (candidates exchanged over the relayed connection; birthday probing when one side is behind a symmetric NAT) and carry its new connections as UDX streams over that path, with the same TLS. Where one side blocks UDP, a TCP connection is punched instead (simultaneous open) and carries them. Pairs that cannot punch (both behind symmetric NATs without a port mapping) stay relayed.', { ours: true }),
      port: int(0, 'UDP port of the node\'s punching socket (also used for the NAT checks). 0: a free port, kept in `commonConfig.stateDir` (`punch-port`) and taken again on the next start when free, so the router renews one mapping.', 0, 65535, { ours: true }),
      portMapping: bool(true, 'Ask the node\'s router for a port mapping of the punching socket (NAT-PMP or PCP to the default gateway, then UPnP-IGD), as upstream\'s NATPortMap does, when the node is behind a NAT. With one, peers reach the node at that port, so a node behind a symmetric NAT gets direct paths to other symmetric ones. The socket answers only datagrams MACed with the PSK.', { ours: true })
    }, 'Direct paths across NAT.', { ours: true })
  }, 'Agent-to-agent data path.', { ours: true }),
  mdns: obj({
    enable: bool(false, 'Find peers on the same LAN by mDNS under the `rendezvous` name, as upstream always does, and dial them directly over libp2p instead of through a relay. Off by default: it answers on UDP 5353 on every interface.', { ours: true })
  }, 'LAN discovery.', { ours: true }),
  dht: obj({
    enable: bool(false, 'Join the Kademlia DHT (upstream\'s `/ipfs/kad/1.0.0` and `/ipfs/lan/kad/1.0.0`), advertise the `rendezvous` there and look it up every `finderPeriod`, as upstream always does; peers found are connected, so Go EdgeMesh agents learn this node\'s name. Off by default: it costs memory, and relays already connect our agents.', { ours: true })
  }, 'DHT discovery.', { ours: true })
}, 'Cross-network tunnel.')

export const EdgeDNSConfig = obj({
  enable: bool(false, 'Serve DNS on the bridge device address.', { defaultDoc: '`true` in EdgeMode, `false` otherwise' }),
  listenPort: port(53, 'DNS port.'),
  clusterDomain: str('cluster.local', 'Cluster DNS zone.', { ours: true }),
  ttl: int(30, 'TTL of cluster answers, in seconds.', 0, 86_400, { ours: true }),
  cacheDNS: obj({
    enable: bool(false, 'Node-local DNS cache mode: forward everything to the cluster DNS.'),
    autoDetect: bool(true, 'Detect the cluster DNS ClusterIPs (kube-system/coredns, kube-dns).'),
    upstreamServers: strList('Extra upstream servers, each `ip` or `ip:port`.', { itemCheck: 'hostPort' }),
    cacheTTL: int(30, 'Cache TTL in seconds.', 0, 86_400)
  }, 'Cache mode.')
}, 'Node-local DNS.')

export const EdgeProxyConfig = obj({
  enable: bool(false, 'Proxy ClusterIP traffic.'),
  serviceFilterMode: oneOf(['FilterIfLabelExists', 'FilterIfLabelDoesNotExists'] as const, 'FilterIfLabelExists',
    'Which services to proxy, by label `service.edgemesh.kubeedge.io/service-proxy-name`.'),
  interception: oneOf(['nftables', 'iptables', 'none'] as const, 'nftables',
    'How ClusterIP traffic reaches the proxy: an nftables table of our own (falling back to iptables where nftables is not available), iptables (a nat chain of our own; every service port through the agent), or none (listeners on 127.0.0.1 that clients connect to themselves: local demo, tests).', { ours: true }),
  kernelPath: bool(true, 'DNAT in the kernel for service ports whose endpoints are reached without the tunnel and whose policy nftables can express.', { ours: true }),
  udpIdleTimeout: int(30, 'Seconds after which a UDP session without traffic is closed.', 1, 86_400, { ours: true }),
  socks5Proxy: obj({
    enable: bool(false, 'SOCKS5 proxy to reach nodes by name.'),
    listenPort: port(10800, 'SOCKS5 port.')
  }, 'SOCKS5 proxy.'),
  loadBalancer: LoadBalancer
}, 'ClusterIP proxy.')

export const EdgeCNIConfig = obj({
  enable: bool(false, 'Claims this node\'s pod block from meshCIDRConfig (a Lease per block, kept in commonConfig.stateDir/cni-block.json, the CNI plugin\'s subnetFile) and carries pod packets to the nodes holding the other blocks: the TUN device edge_tun0, over the tunnel\'s data path (needs edgeTunnel with psk and dataPath on).'),
  encapsulationIP: str('', 'Upstream\'s edge CNI encapsulation IP.', { noEffect: true }),
  tunMode: int(0, 'Upstream\'s edge CNI TUN mode.', 0, 1_000_000, { noEffect: true }),
  meshCIDRConfig: obj({
    cloudCIDR: strList('Pod CIDRs of cloud nodes: blocks of a /24 each are claimed from them.', { itemCheck: 'cidr' }),
    edgeCIDR: strList('Pod CIDRs of edge nodes (label node-role.kubernetes.io/edge): blocks of a /24 each are claimed from them.', { itemCheck: 'cidr' })
  }, 'Pod CIDRs of the cloud and edge.')
}, 'Edge CNI: pod blocks, the routing plane between nodes and the CNI plugin (edgemesh cni).')

export const AgentConfig = Type.Object({
  apiVersion: str('agent.edgemesh.config.kubeedge.io/v1alpha1', 'Config API version (not checked).', { noEffect: true }),
  kind: str('EdgeMeshAgent', 'Config kind (not checked).', { noEffect: true }),
  kubeAPIConfig: KubeAPIConfig,
  commonConfig: obj({
    bridgeDeviceName: str('edgemesh0', 'Interface that carries the bridge IP.', { check: 'ifName', maxLength: MAX_IFNAME }),
    bridgeDeviceIP: str('169.254.96.16', 'DNS and proxy address; must equal the edge `clusterDNS`. Not 0.0.0.0; a loopback address (127.0.0.0/8) only with `edgeProxy.interception: none` or the proxy off.', { check: 'ipv4' }),
    pprofConfig: PprofConfig,
    stateDir: str('/var/lib/edgemesh', 'Directory for persisted state (service map for edge autonomy, node key).', { ours: true, check: 'absolutePath' }),
    logLevel: oneOf(['debug', 'info', 'warn', 'error'] as const, 'info', 'Log level.', { ours: true }),
    statusAddress: str('127.0.0.1', 'Address of the status server (`/healthz`, `/readyz`, `/metrics`, `/status`).', { ours: true, check: 'ipv4' }),
    statusPort: int(10551, 'Port of the status server; 0 turns it off.', 0, 65535, { ours: true }),
    releaseStartupPages: bool(true, 'Once the agent idles after its start, unmaps the pages of the `node` binary that only the start used (`madvise(MADV_DONTNEED)` on its read-only file mappings): about 20 MB less RSS, and less weight with the OOM killer. They stay in the page cache, which the kernel reclaims first; a page used again is mapped back on its next use.', { ours: true })
  }, 'Settings shared by the modules.'),
  modules: obj({
    edgeDNS: EdgeDNSConfig,
    edgeProxy: EdgeProxyConfig,
    edgeTunnel: EdgeTunnelConfig,
    edgeCNI: EdgeCNIConfig
  }, 'Modules.')
}, { description: 'edgemesh-agent.yaml' })

export const GatewayConfig = Type.Object({
  apiVersion: str('gateway.edgemesh.config.kubeedge.io/v1alpha1', 'Config API version (not checked).', { noEffect: true }),
  kind: str('EdgeMeshGateway', 'Config kind (not checked).', { noEffect: true }),
  kubeAPIConfig: KubeAPIConfig,
  pprofConfig: PprofConfig,
  logLevel: oneOf(['debug', 'info', 'warn', 'error'] as const, 'info', 'Log level.', { ours: true }),
  statusAddress: str('127.0.0.1', 'Address of the gateway\'s status server (`/healthz`, `/readyz`, `/metrics`, `/status`).', { ours: true, check: 'ipv4' }),
  statusPort: int(10552, 'Port of the gateway\'s status server (the agent\'s is 10551, so both fit on one node); 0 turns it off.', 0, 65535, { ours: true }),
  modules: obj({
    edgeGateway: obj({
      enable: bool(false, 'Serve the Istio Gateways and VirtualServices of the cluster.'),
      nic: str('*', 'Comma-separated interfaces to listen on; `*` or empty means all.', { check: 'nicList' }),
      includeIP: str('*', 'Comma-separated IPs/CIDRs to listen on; `*` or empty means all.', { check: 'ipOrCidrList' }),
      excludeIP: str('*', 'Comma-separated IPs/CIDRs never to listen on; `*` or empty means none.', { check: 'ipOrCidrList' }),
      loadBalancer: LoadBalancer
    }, 'Ingress gateway.'),
    edgeTunnel: EdgeTunnelConfig
  }, 'Modules. The tunnel runs as a client (no relay service, no reservations) on `listenPort + 1`, with node name `<NODE_NAME>-gateway`.')
}, { description: 'edgemesh-gateway.yaml' })

export type AgentConfig = Static<typeof AgentConfig>
export type GatewayConfig = Static<typeof GatewayConfig>
export type KubeAPIConfig = Static<typeof KubeAPIConfig>
export type EdgeTunnelConfig = Static<typeof EdgeTunnelConfig>
export type EdgeDNSConfig = Static<typeof EdgeDNSConfig>
export type EdgeProxyConfig = Static<typeof EdgeProxyConfig>
export type RelayNode = Static<typeof RelayNode>

export type ConfigKind = 'agent' | 'gateway'
export const SCHEMAS: Record<ConfigKind, TSchema> = { agent: AgentConfig, gateway: GatewayConfig }
