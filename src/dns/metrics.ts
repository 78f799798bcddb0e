/**
 * DNS metrics on an injected prom-client Registry. The per-query counters are
 * plain typed arrays on the hot path and move into prom-client when the
 * registry is scraped (`collect`), so a query costs two array increments;
 * the latency histogram is a `LocalHistogram` for the same reason.
 */
import { Counter, Gauge } from 'prom-client'
import type { Metric, Registry } from 'prom-client'
import { TYPE } from './wire.ts'
import { LocalHistogram } from '../observability/local-histogram.ts'
import type { HistogramSeries } from '../observability/local-histogram.ts'

/** Query types with their own label value; everything else is `other`. */
const TYPE_LABELS: ReadonlyArray<[number, string]> = [
  [TYPE.A, 'A'], [TYPE.AAAA, 'AAAA'], [TYPE.SRV, 'SRV'], [TYPE.PTR, 'PTR'], [TYPE.TXT, 'TXT'], [TYPE.CNAME, 'CNAME'],
  [TYPE.SOA, 'SOA'], [TYPE.NS, 'NS'], [TYPE.MX, 'MX'], [TYPE.HTTPS, 'HTTPS'], [TYPE.ANY, 'ANY']
]
const TYPE_NAMES = [...TYPE_LABELS.map(([, n]) => n), 'other']
const TYPE_INDEX = new Int8Array(65536).fill(TYPE_LABELS.length)
for (const [i, [code]] of TYPE_LABELS.entries()) TYPE_INDEX[code] = i
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'BADVERS', 'other']
const PROTOS = ['udp', 'tcp'] as const

/** Where an answer came from, for the latency histogram. */
export type ServedBy = 'cluster' | 'cache' | 'upstream' | 'error'
const SERVED_BY: readonly ServedBy[] = ['cluster', 'cache', 'upstream', 'error']
const DURATION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

export interface DnsMetricsInit {
  registry: Registry
}

export class DnsMetrics {
  readonly #queries = new Float64Array(PROTOS.length * TYPE_NAMES.length * RCODE_NAMES.length)
  readonly #reported = new Float64Array(this.#queries.length)
  #hits = 0
  #misses = 0
  #reportedHits = 0
  #reportedMisses = 0
  readonly #duration: LocalHistogram
  /** One series per SERVED_BY entry, in its order. */
  readonly #durationSeries: HistogramSeries[]
  readonly #upstreamErrors: Counter<'upstream' | 'reason'>
  readonly #upstreamRequests: Counter<'upstream' | 'protocol'>
  readonly #dropped: Counter<'reason'>
  readonly #tcpClosed: Counter<'reason'>
  readonly #upstreams: Gauge
  readonly #cacheEntries: Gauge<'cache'>
  /** Set by the server: current sizes of its answer tables. */
  cacheSizes: () => { cluster: number, forward: number } = () => ({ cluster: 0, forward: 0 })

  constructor (registry: Registry) {
    const queries = this.#queries
    const reported = this.#reported
    const registers = [registry]
    // eslint-disable-next-line no-new -- registered on the registry; read through collect()
    new Counter({
      name: 'edgemesh_dns_queries_total',
      help: 'DNS queries answered, by transport, query type and response code.',
      labelNames: ['protocol', 'type', 'rcode'],
      registers,
      collect () {
        for (let i = 0; i < queries.length; i++) {
          const delta = (queries[i] as number) - (reported[i] as number)
          if (delta === 0) continue
          reported[i] = queries[i] as number
          const rc = i % RCODE_NAMES.length
          const ty = Math.floor(i / RCODE_NAMES.length) % TYPE_NAMES.length
          const pr = Math.floor(i / (RCODE_NAMES.length * TYPE_NAMES.length))
          this.inc({ protocol: PROTOS[pr], type: TYPE_NAMES[ty], rcode: RCODE_NAMES[rc] }, delta)
        }
      }
    })
    const self = this
    // eslint-disable-next-line no-new -- as above
    new Counter({
      name: 'edgemesh_dns_cache_hits_total',
      help: 'Forwarded names answered from the cache.',
      registers,
      collect () { this.inc(self.#hits - self.#reportedHits); self.#reportedHits = self.#hits }
    })
    // eslint-disable-next-line no-new -- as above
    new Counter({
      name: 'edgemesh_dns_cache_misses_total',
      help: 'Forwarded names not in the cache (sent upstream).',
      registers,
      collect () { this.inc(self.#misses - self.#reportedMisses); self.#reportedMisses = self.#misses }
    })
    this.#cacheEntries = new Gauge({
      name: 'edgemesh_dns_cache_entries',
      help: 'Pre-encoded answers held: cluster (until the service map changes) and forward (until their TTL ends).',
      labelNames: ['cache'],
      registers,
      collect () {
        const s = self.cacheSizes()
        this.set({ cache: 'cluster' }, s.cluster)
        this.set({ cache: 'forward' }, s.forward)
      }
    })
    this.#duration = new LocalHistogram('edgemesh_dns_request_duration_seconds',
      'Time from receiving a query to sending its answer, by where the answer came from.', 'served_by', DURATION_BUCKETS)
    this.#durationSeries = SERVED_BY.map(by => this.#duration.series(by))
    registry.registerMetric(this.#duration as unknown as Metric)
    this.#upstreamRequests = new Counter({
      name: 'edgemesh_dns_upstream_requests_total',
      help: 'Exchanges with upstream servers.',
      labelNames: ['upstream', 'protocol'],
      registers
    })
    this.#upstreamErrors = new Counter({
      name: 'edgemesh_dns_upstream_errors_total',
      help: 'Failed upstream exchanges, by reason (timeout, servfail, refused, network, malformed).',
      labelNames: ['upstream', 'reason'],
      registers
    })
    this.#dropped = new Counter({
      name: 'edgemesh_dns_dropped_total',
      help: 'Queries dropped without an answer: malformed (too short, a response), overload, remote_source (a client that is not on this node; TCP connections count once).',
      labelNames: ['reason'],
      registers
    })
    this.#tcpClosed = new Counter({
      name: 'edgemesh_dns_tcp_closed_total',
      help: 'TCP connections the server closed: idle (no query within the idle timeout), read_deadline (a query started and not finished in time), evicted (the oldest idle one, to make room at the cap), refused (at the cap with none idle).',
      labelNames: ['reason'],
      registers
    })
    this.#upstreams = new Gauge({
      name: 'edgemesh_dns_upstream_servers',
      help: 'Usable upstream servers (0 means forwarded names fail with SERVFAIL).',
      registers
    })
    for (const reason of ['malformed', 'overload', 'remote_source']) this.#dropped.inc({ reason }, 0)
  }

  /** Hot path: one answered query. */
  query (tcp: boolean, qtype: number, rcode: number): void {
    const rc = rcode <= 5 ? rcode : rcode === 16 ? 6 : 7
    const i = ((tcp ? 1 : 0) * TYPE_NAMES.length + (TYPE_INDEX[qtype & 0xffff] as number)) * RCODE_NAMES.length + rc
    this.#queries[i] = (this.#queries[i] as number) + 1
  }

  duration (servedBy: ServedBy, seconds: number): void {
    this.#duration.observe(this.#durationSeries[SERVED_BY.indexOf(servedBy)] as HistogramSeries, seconds)
  }

  cacheHit (): void { this.#hits++ }
  cacheMiss (): void { this.#misses++ }
  dropped (reason: 'malformed' | 'overload' | 'remote_source'): void { this.#dropped.inc({ reason }) }
  tcpClosed (reason: 'idle' | 'read_deadline' | 'evicted' | 'refused'): void { this.#tcpClosed.inc({ reason }) }
  upstreamRequest (upstream: string, protocol: 'udp' | 'tcp'): void { this.#upstreamRequests.inc({ upstream, protocol }) }
  upstreamError (upstream: string, reason: 'timeout' | 'servfail' | 'refused' | 'network' | 'malformed'): void {
    this.#upstreamErrors.inc({ upstream, reason })
  }

  upstreamServers (n: number): void { this.#upstreams.set(n) }
}
