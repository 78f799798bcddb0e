/** Proxy metrics on an injected prom-client Registry (names `edgemesh_proxy_*`). */
import { Counter, Gauge, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'

export class ProxyMetrics {
  readonly connections: Counter<'service' | 'protocol'>
  readonly active: Gauge<'service' | 'protocol'>
  readonly bytes: Counter<'service' | 'direction'>
  readonly connectErrors: Counter<'service' | 'path'>
  readonly picks: Counter<'service' | 'path'>
  readonly refused: Counter<'service' | 'reason'>
  readonly listenOverflows: Counter
  readonly rules: Gauge<'path'>
  readonly syncSeconds: Histogram<'interceptor'>
  readonly syncErrors: Counter<'interceptor'>

  constructor (registry: Registry) {
    const registers = [registry]
    this.connections = new Counter({ name: 'edgemesh_proxy_connections_total', help: 'Proxied connections (TCP) and UDP sessions accepted.', labelNames: ['service', 'protocol'], registers })
    this.active = new Gauge({ name: 'edgemesh_proxy_connections_active', help: 'Proxied connections (TCP) and UDP sessions open now.', labelNames: ['service', 'protocol'], registers })
    this.bytes = new Counter({ name: 'edgemesh_proxy_bytes_total', help: 'Bytes proxied; direction is to_endpoint or to_client.', labelNames: ['service', 'direction'], registers })
    this.connectErrors = new Counter({ name: 'edgemesh_proxy_connect_errors_total', help: 'Failed attempts to reach an endpoint.', labelNames: ['service', 'path'], registers })
    this.picks = new Counter({ name: 'edgemesh_proxy_endpoint_picks_total', help: 'Endpoints chosen for new connections, by path (direct or tunnel).', labelNames: ['service', 'path'], registers })
    this.refused = new Counter({ name: 'edgemesh_proxy_refused_total', help: 'Client connections reset without an endpoint: no_endpoints, connect_failed, overload (too many clients already waiting for an endpoint), client_left (the client left before its endpoint was reached).', labelNames: ['service', 'reason'], registers })
    this.listenOverflows = new Counter({ name: 'edgemesh_proxy_listen_overflows_total', help: 'Connections the kernel dropped because a listen queue on the node was full (TcpExt ListenOverflows, node-wide): clients that gave up before the agent saw them, a sign of a CPU-starved node.', registers })
    this.rules = new Gauge({ name: 'edgemesh_proxy_rules', help: 'Intercepted service ports, by path (kernel DNAT or userspace).', labelNames: ['path'], registers })
    this.syncSeconds = new Histogram({ name: 'edgemesh_proxy_rule_sync_duration_seconds', help: 'Time to apply one interception update.', labelNames: ['interceptor'], buckets: [0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5], registers })
    this.syncErrors = new Counter({ name: 'edgemesh_proxy_rule_sync_errors_total', help: 'Failed interception updates.', labelNames: ['interceptor'], registers })
  }
}
