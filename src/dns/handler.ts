/**
 * The transport-independent query engine: one message in, one reply out.
 * Known (name, type) pairs are answered synchronously from pre-encoded
 * replies; the first query for a pair resolves it (cluster zone) or forwards
 * it (everything else), and stores the encoded reply for the next ones.
 */
import dnsPacket from 'dns-packet'
import type { Logger } from '../observability/logger.ts'
import type { ServiceMapView } from '../servicemap/types.ts'
import { AnswerTable, PreparedAnswer } from './answer.ts'
import type { DnsMetrics, ServedBy } from './metrics.ts'
import { ClusterIndex, resolve } from './resolver.ts'
import {
  CLASS_ANY, CLASS_IN, PARSE_BADVERS, PARSE_DROP, PARSE_FORMERR, PARSE_NOTIMP, PARSE_OK, QueryParser, RCODE, UDP_PLAIN_MAX,
  errorReply, keyToName, layoutReply, nameToKey
} from './wire.ts'
import type { DnsRecord, ReplyLayout } from './wire.ts'

/** Largest UDP reply we send even when a client offers more (no IP fragmentation beyond this). */
export const UDP_REPLY_MAX = 4096
const TCP_REPLY_MAX = 65535
/** Queries waiting for an upstream at once; more are dropped (the client retries) rather than queued without bound. */
const MAX_PENDING = 10_000

/** What the handler needs from the forwarder. */
export interface Upstream {
  exchange (name: string, qtype: number, qclass: number): Promise<Buffer>
}

export interface DnsHandlerDeps {
  logger: Logger
  metrics: DnsMetrics
  serviceMap: ServiceMapView
  upstream: Upstream
  /** Milliseconds, monotonic. @default performance.now */
  clock?: () => number
}

export interface DnsHandlerInit {
  /** Cluster domain. */
  zone: string
  /** TTL of cluster answers, seconds. */
  ttl: number
  /** This server's address (the zone's NS). */
  nameserverIP: string
  /** cacheDNS mode: forward every name, the cluster zone included. @default false */
  forwardAll?: boolean
  /** Cap on how long a forwarded reply is cached, seconds (0: no cache). @default 30 */
  maxCacheTtl?: number
  /** Bound of each answer table. @default 20000 */
  maxEntries?: number
}

export type Reply = Buffer | Promise<Buffer | undefined> | undefined

export class DnsHandler {
  readonly #log: Logger
  readonly #metrics: DnsMetrics
  readonly #view: ServiceMapView
  readonly #upstream: Upstream
  readonly #now: () => number
  readonly #init: Required<DnsHandlerInit>
  readonly #parser = new QueryParser()
  readonly #cluster: AnswerTable
  readonly #forward: AnswerTable
  readonly #inflight = new Map<string, Promise<PreparedAnswer | undefined>>()
  #index: ClusterIndex | undefined
  #serial = Math.floor(Date.now() / 1000)
  #pending = 0
  #warnedUnsynced = false
  #idle: Array<() => void> = []

  constructor (deps: DnsHandlerDeps, init: DnsHandlerInit) {
    this.#log = deps.logger
    this.#metrics = deps.metrics
    this.#view = deps.serviceMap
    this.#upstream = deps.upstream
    this.#now = deps.clock ?? (() => performance.now())
    this.#init = { forwardAll: false, maxCacheTtl: 30, maxEntries: 20_000, ...init, zone: init.zone.replace(/\.$/, '').toLowerCase() }
    this.#cluster = new AnswerTable(this.#init.maxEntries)
    this.#forward = new AnswerTable(this.#init.maxEntries)
    deps.metrics.cacheSizes = () => ({ cluster: this.#cluster.size, forward: this.#forward.size })
  }

  /** Queries waiting for an upstream. */
  get pending (): number {
    return this.#pending
  }

  /** Resolves once no query waits for an upstream. */
  async whenIdle (): Promise<void> {
    if (this.#pending === 0) return
    await new Promise<void>(resolve => this.#idle.push(resolve))
  }

  /** The service map changed: drop cluster answers (rebuilt lazily) and forwarded reverse answers. */
  invalidate (): void {
    this.#index = undefined
    this.#serial = (this.#serial + 1) >>> 0
    this.#cluster.clear()
    // A reverse name forwarded before may now be a ClusterIP.
    this.#forward.deleteWhere(key => key.endsWith('\x04arpa\0'))
  }

  /**
   * Answers one message. Returns the reply (hot path), a promise of it, or
   * undefined when the packet is dropped (not a query, or unparseable header).
   */
  respond (msg: Buffer, tcp: boolean): Reply {
    const t0 = this.#now()
    const p = this.#parser
    const r = p.parse(msg)
    if (r !== PARSE_OK) return this.#malformed(msg, r, tcp, t0)
    if (p.qclass === CLASS_IN) {
      let a = this.#cluster.get(p.qtype, p.key)
      let servedBy: ServedBy = 'cluster'
      if (a === undefined) {
        a = this.#forward.get(p.qtype, p.key)
        servedBy = 'cache'
        if (a !== undefined && a.expiresAt <= t0) {
          this.#forward.delete(p.qtype, p.key)
          a = undefined
        }
        if (a !== undefined) {
          this.#metrics.cacheHit()
          if (t0 >= a.refreshAt) this.#refresh(a, p.key, p.qtype)
        }
      }
      if (a !== undefined) {
        const out = a.write(msg, p.qEnd, p.edns, maxReply(tcp, p.edns, p.udpSize), t0)
        this.#metrics.query(tcp, p.qtype, a.rcode)
        this.#metrics.duration(servedBy, (this.#now() - t0) / 1000)
        return out
      }
    }
    if (this.#pending >= MAX_PENDING) {
      this.#metrics.dropped('overload')
      return undefined
    }
    return this.#slow(msg, tcp, t0, p.key, p.qtype, p.qclass, p.qEnd, p.edns, maxReply(tcp, p.edns, p.udpSize))
  }

  #malformed (msg: Buffer, r: number, tcp: boolean, t0: number): Buffer | undefined {
    if (r === PARSE_DROP) {
      this.#metrics.dropped('malformed')
      return undefined
    }
    const rcode = r === PARSE_FORMERR ? RCODE.FORMERR : r === PARSE_NOTIMP ? RCODE.NOTIMP : r === PARSE_BADVERS ? RCODE.BADVERS : RCODE.SERVFAIL
    const qtype = this.#parser.key === '' ? 0 : this.#parser.qtype
    this.#metrics.query(tcp, qtype, rcode)
    this.#metrics.duration('error', (this.#now() - t0) / 1000)
    return errorReply(msg, rcode, { edns: r === PARSE_BADVERS })
  }

  async #slow (msg: Buffer, tcp: boolean, t0: number, key: string, qtype: number, qclass: number, qEnd: number, edns: boolean, maxBytes: number): Promise<Buffer | undefined> {
    this.#pending++
    try {
      const { answer, servedBy } = await this.#answer(key, qtype, qclass)
      const now = this.#now()
      let out: Buffer
      if (answer === undefined) {
        out = failure(msg, qEnd, edns)
        this.#metrics.query(tcp, qtype, RCODE.SERVFAIL)
      } else {
        out = answer.write(msg, qEnd, edns, maxBytes, now)
        this.#metrics.query(tcp, qtype, answer.rcode)
      }
      this.#metrics.duration(answer === undefined ? 'error' : servedBy, (now - t0) / 1000)
      return out
    } catch (err) {
      // A bug, not a network condition: answer SERVFAIL, keep serving.
      this.#log.error('query failed', { err, name: keyToName(key), qtype })
      this.#metrics.query(tcp, qtype, RCODE.SERVFAIL)
      return failure(msg, qEnd, edns)
    } finally {
      if (--this.#pending === 0 && this.#idle.length > 0) {
        const waiters = this.#idle
        this.#idle = []
        for (const w of waiters) w()
      }
    }
  }

  async #answer (key: string, qtype: number, qclass: number): Promise<{ answer: PreparedAnswer | undefined, servedBy: ServedBy }> {
    const name = keyToName(key)
    if (!this.#init.forwardAll && (qclass === CLASS_IN || qclass === CLASS_ANY)) {
      const index = this.#currentIndex()
      if (index === undefined) {
        if (this.#inZone(name)) {
          if (!this.#warnedUnsynced) {
            this.#warnedUnsynced = true
            this.#log.warn('service map not synced yet: cluster names answer SERVFAIL until it is', { name })
          }
          return { answer: undefined, servedBy: 'error' }
        }
      } else {
        const res = resolve(index, name, qtype)
        if (res.kind === 'answer') {
          if (res.chase !== undefined) return { answer: await this.#chase(name, key, qtype, res.answers, res.chase), servedBy: 'upstream' }
          const a = PreparedAnswer.authoritative(name, key, qtype, res.rcode, res.answers, res.authorities, res.additionals)
          if (qclass === CLASS_IN) this.#cluster.set(qtype, key, a)
          return { answer: a, servedBy: 'cluster' }
        }
      }
    }
    return { answer: await this.#forwarded(key, name, qtype, qclass), servedBy: 'upstream' }
  }

  #currentIndex (): ClusterIndex | undefined {
    if (this.#index === undefined && this.#view.hasSynced()) {
      this.#index = new ClusterIndex(this.#view.snapshot(), {
        zone: this.#init.zone, ttl: this.#init.ttl, nameserverIP: this.#init.nameserverIP, serial: this.#serial
      })
      if (this.#warnedUnsynced) this.#log.info('service map synced: answering cluster names', { services: this.#index.services.size })
      this.#warnedUnsynced = false
    }
    return this.#index
  }

  #inZone (name: string): boolean {
    const z = this.#init.zone
    return name === z || name.endsWith('.' + z)
  }

  /** A forwarded answer: from the cache, from a query already in flight, or a new exchange. */
  async #forwarded (key: string, name: string, qtype: number, qclass: number): Promise<PreparedAnswer | undefined> {
    if (qclass !== CLASS_IN) return await this.#fetch(key, name, qtype, qclass, false)
    const cached = this.#forward.get(qtype, key)
    if (cached !== undefined && cached.expiresAt > this.#now()) return cached
    this.#metrics.cacheMiss()
    const flightKey = `${qtype}:${key}`
    let flight = this.#inflight.get(flightKey)
    if (flight === undefined) {
      flight = this.#fetch(key, name, qtype, qclass, true).finally(() => this.#inflight.delete(flightKey))
      this.#inflight.set(flightKey, flight)
    }
    return await flight
  }

  /** Refetches a popular forwarded answer before it expires; the cached one is served meanwhile. */
  #refresh (a: PreparedAnswer, key: string, qtype: number): void {
    a.refreshAt = Infinity
    const flightKey = `${qtype}:${key}`
    if (this.#inflight.has(flightKey)) return
    const flight = this.#fetch(key, keyToName(key), qtype, CLASS_IN, true).catch(() => undefined).finally(() => this.#inflight.delete(flightKey))
    this.#inflight.set(flightKey, flight)
  }

  async #fetch (key: string, name: string, qtype: number, qclass: number, cache: boolean): Promise<PreparedAnswer | undefined> {
    let reply: Buffer
    try {
      reply = await this.#upstream.exchange(name, qtype, qclass)
    } catch (err) {
      this.#log.debug('forwarding failed', { name, qtype, err: (err as Error).message })
      return undefined
    }
    if (reply.length === 0) return undefined
    const layout = layoutReply(reply)
    if (layout === undefined) return undefined
    const now = this.#now()
    const ttl = cache ? Math.min(this.#init.maxCacheTtl, cacheTtl(layout, reply)) : 0
    const a = PreparedAnswer.forwarded(reply, layout, now, ttl * 1000)
    if (ttl > 0) this.#forward.set(qtype, key, a)
    return a
  }

  /** ExternalName outside the zone: the CNAME plus the target's records from upstream (as CoreDNS does). */
  async #chase (name: string, key: string, qtype: number, cnames: DnsRecord[], chase: { name: string, type: number }): Promise<PreparedAnswer> {
    const target = await this.#forwarded(nameToKey(chase.name), chase.name, chase.type, CLASS_IN)
    const ttl = this.#init.ttl
    let rcode = 0
    const extra: DnsRecord[] = []
    if (target !== undefined && (target.rcode === RCODE.NOERROR || target.rcode === RCODE.NXDOMAIN)) {
      rcode = target.rcode
      const decoded = dnsPacket.decode(target.plain)
      for (const a of decoded.answers ?? []) {
        const r = toRecord(a, ttl)
        if (r !== undefined) extra.push(r)
      }
    }
    return PreparedAnswer.authoritative(name, key, qtype, rcode, [...cnames, ...extra], [], [])
  }
}

function maxReply (tcp: boolean, edns: boolean, udpSize: number): number {
  if (tcp) return TCP_REPLY_MAX
  return edns ? Math.min(udpSize, UDP_REPLY_MAX) : UDP_PLAIN_MAX
}

function failure (msg: Buffer, qEnd: number, edns: boolean): Buffer {
  return errorReply(msg, RCODE.SERVFAIL, { qEnd, edns })
}

/**
 * How long a forwarded reply may be cached, seconds: the smallest TTL of the
 * answer and authority records; for negative answers the SOA's (RFC 2308);
 * never for failures.
 */
function cacheTtl (layout: ReplyLayout, reply: Buffer): number {
  if (layout.rcode === RCODE.NXDOMAIN || (layout.rcode === RCODE.NOERROR && layout.answerCount === 0)) {
    return Math.max(0, layout.soaMinimum)
  }
  if (layout.rcode !== RCODE.NOERROR) return 0
  let min = Infinity
  for (const o of layout.ttlOffsets) if (o < layout.additionalStart) min = Math.min(min, reply.readUInt32BE(o))
  return min === Infinity ? 0 : min
}

function toRecord (a: dnsPacket.Answer, ttlCap: number): DnsRecord | undefined {
  const ttl = Math.min(ttlCap, 'ttl' in a && typeof a.ttl === 'number' ? a.ttl : ttlCap)
  switch (a.type) {
    case 'A': case 'AAAA': case 'CNAME': case 'PTR': case 'NS':
      return { name: a.name, ttl, type: a.type, data: a.data }
    case 'TXT': {
      const d = Array.isArray(a.data) ? a.data : [a.data]
      return { name: a.name, ttl, type: 'TXT', data: d.map(x => x.toString()) }
    }
    case 'SRV':
      return { name: a.name, ttl, type: 'SRV', data: { priority: a.data.priority ?? 0, weight: a.data.weight ?? 0, port: a.data.port, target: a.data.target } }
    default:
      return undefined
  }
}
