/**
 * Gateway metrics on an injected prom-client Registry (names `edgemesh_gateway_*`).
 * What every request touches (answers by route and status class, their
 * latency, the fast path's outcome) is counted in plain arrays and moves into
 * prom-client when the registry is scraped: prom-client hashes its label
 * object on every call, about 6 µs of a fast-path request (docs/benchmarks.md).
 */
import { Counter, Gauge } from 'prom-client'
import type { Metric, Registry } from 'prom-client'
import { LocalHistogram } from '../observability/local-histogram.ts'
import type { HistogramSeries } from '../observability/local-histogram.ts'

/** Index 1..9: status class `Nxx`; TCP_INDEX: TCP and TLS connections. */
const TCP_INDEX = 10
const CODE_NAMES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx', '6xx', '7xx', '8xx', '9xx', 'tcp']
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]
export type FastPathOutcome = 'forwarded' | 'handed_over'
/** `answered`: the mirror's backend answered (any status); `failed`: no endpoint, refused or timed out; `dropped`: fell too far behind the request's body. */
export type MirrorOutcome = 'answered' | 'failed' | 'dropped'

interface RouteCounts {
  readonly answers: Float64Array
  readonly reported: Float64Array
  /** Made on the first timed answer: TCP routes have none. */
  duration: HistogramSeries | undefined
}

export class GatewayMetrics {
  readonly connections: Gauge<'port'>
  readonly connectErrors: Counter<'route'>
  readonly routes: Gauge
  readonly rejected: Counter<'kind'>
  readonly #mirrored: Counter<'route' | 'outcome'>
  readonly #byRoute = new Map<string, RouteCounts>()
  readonly #duration: LocalHistogram
  readonly #fastPath = { forwarded: 0, handed_over: 0 }

  constructor (registry: Registry) {
    const registers = [registry]
    const byRoute = this.#byRoute
    const fastPath = this.#fastPath
    // eslint-disable-next-line no-new -- registered on the registry; read through collect()
    new Counter({
      name: 'edgemesh_gateway_requests_total',
      help: 'HTTP requests answered, by route (`namespace/virtualservice#route`, `none` when no route matched) and status class (2xx..5xx); TCP and TLS connections count once with code `tcp`.',
      labelNames: ['route', 'code'],
      registers,
      collect () {
        for (const [route, c] of byRoute) {
          for (let i = 0; i < c.answers.length; i++) {
            const delta = (c.answers[i] as number) - (c.reported[i] as number)
            if (delta === 0) continue
            c.reported[i] = c.answers[i] as number
            this.inc({ route, code: CODE_NAMES[i] }, delta)
          }
        }
      }
    })
    this.#duration = new LocalHistogram('edgemesh_gateway_request_duration_seconds', 'Time from a request\'s arrival to its response head, by route.', 'route', DURATION_BUCKETS)
    registry.registerMetric(this.#duration as unknown as Metric)
    this.connections = new Gauge({ name: 'edgemesh_gateway_connections_active', help: 'Client connections open now, by listener port.', labelNames: ['port'], registers })
    this.connectErrors = new Counter({ name: 'edgemesh_gateway_upstream_connect_errors_total', help: 'Failed attempts to reach a backend endpoint, by route.', labelNames: ['route'], registers })
    this.routes = new Gauge({ name: 'edgemesh_gateway_routes', help: 'HTTP, TCP and TLS routes served now.', registers })
    const reported = { forwarded: 0, handed_over: 0 }
    // eslint-disable-next-line no-new -- as above
    new Counter({
      name: 'edgemesh_gateway_http1_fast_path_total',
      help: 'HTTP/1.1 requests met by the fast path: `forwarded` by it, or `handed_over` with their connection to the full HTTP handler (redirects, retries, timeouts, mirrors, HTTP/2 backends, upgrades, chunked request bodies, HTTP/1.0, unusual heads).',
      labelNames: ['outcome'],
      registers,
      collect () {
        for (const outcome of ['forwarded', 'handed_over'] as const) {
          this.inc({ outcome }, fastPath[outcome] - reported[outcome])
          reported[outcome] = fastPath[outcome]
        }
      }
    })
    this.#mirrored = new Counter({ name: 'edgemesh_gateway_mirrored_requests_total', help: 'Copies of requests sent to a route\'s mirrors (Istio `mirrors`, Gateway API `RequestMirror`), by route and outcome: `answered`, `failed` (no endpoint, refused, timed out) or `dropped` (fell more than 1 MiB behind the request\'s body).', labelNames: ['route', 'outcome'], registers })
    this.rejected = new Counter({ name: 'edgemesh_gateway_resources_rejected_total', help: 'Gateways and VirtualServices left out because a field is invalid (the log names it), by kind.', labelNames: ['kind'], registers })
  }

  /** Counts one answer of `route` with `status` (a number, or `tcp`); `seconds` from arrival to response head, when timed. */
  answered (route: string, status: number | 'tcp', seconds?: number): void {
    let c = this.#byRoute.get(route)
    if (c === undefined) {
      c = { answers: new Float64Array(CODE_NAMES.length), reported: new Float64Array(CODE_NAMES.length), duration: undefined }
      this.#byRoute.set(route, c)
    }
    const i = status === 'tcp' ? TCP_INDEX : Math.min(9, Math.max(0, Math.floor(status / 100)))
    c.answers[i] = (c.answers[i] as number) + 1
    if (seconds !== undefined) this.#duration.observe(c.duration ??= this.#duration.series(route), seconds)
  }

  /** Counts one mirrored copy of a request of `route`. */
  mirrored (route: string, outcome: MirrorOutcome): void {
    this.#mirrored.inc({ route, outcome })
  }

  /** Counts a request the fast path met. */
  fastPath (outcome: FastPathOutcome): void {
    this.#fastPath[outcome]++
  }
}
