/** Gateway metrics on an injected prom-client Registry (names `edgemesh_gateway_*`). */
import { Counter, Gauge, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'

export class GatewayMetrics {
  readonly requests: Counter<'route' | 'code'>
  readonly duration: Histogram<'route'>
  readonly connections: Gauge<'port'>
  readonly connectErrors: Counter<'route'>
  readonly routes: Gauge
  readonly rejected: Counter<'kind'>
  readonly fastPath: Counter<'outcome'>

  constructor (registry: Registry) {
    const registers = [registry]
    this.requests = new Counter({ name: 'edgemesh_gateway_requests_total', help: 'HTTP requests answered, by route (`namespace/virtualservice#route`, `none` when no route matched) and status class (2xx..5xx); TCP and TLS connections count once with code `tcp`.', labelNames: ['route', 'code'], registers })
    this.duration = new Histogram({ name: 'edgemesh_gateway_request_duration_seconds', help: 'Time from a request\'s arrival to its response head, by route.', labelNames: ['route'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers })
    this.connections = new Gauge({ name: 'edgemesh_gateway_connections_active', help: 'Client connections open now, by listener port.', labelNames: ['port'], registers })
    this.connectErrors = new Counter({ name: 'edgemesh_gateway_upstream_connect_errors_total', help: 'Failed attempts to reach a backend endpoint, by route.', labelNames: ['route'], registers })
    this.routes = new Gauge({ name: 'edgemesh_gateway_routes', help: 'HTTP, TCP and TLS routes served now.', registers })
    this.fastPath = new Counter({ name: 'edgemesh_gateway_http1_fast_path_total', help: 'HTTP/1.1 requests met by the fast path: `forwarded` by it, or `handed_over` with their connection to the full HTTP handler (redirects, retries, timeouts, HTTP/2 backends, upgrades, chunked request bodies, HTTP/1.0, unusual heads).', labelNames: ['outcome'], registers })
    this.rejected = new Counter({ name: 'edgemesh_gateway_resources_rejected_total', help: 'Gateways and VirtualServices left out because a field is invalid (the log names it), by kind.', labelNames: ['kind'], registers })
  }

  /** Counts one answer of `route` with `status` (a number, or `tcp`); `seconds` from arrival to response head, when timed. */
  answered (route: string, status: number | 'tcp', seconds?: number): void {
    this.requests.inc({ route, code: status === 'tcp' ? status : `${Math.floor(status / 100)}xx` })
    if (seconds !== undefined) this.duration.observe({ route }, seconds)
  }
}
