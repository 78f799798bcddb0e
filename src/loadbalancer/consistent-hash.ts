import { endpointKey, targetPort } from './policy.ts'
import type { LbPolicy, PickContext } from './policy.ts'
import { RoundRobinPolicy } from './round-robin.ts'
import { xxh64, xxh64Uint64LE } from './xxhash64.ts'
import type { Endpoint } from '../servicemap/types.ts'

/** `modules.edgeProxy.loadBalancer.consistentHash` (same names and defaults as upstream). */
export interface RingConfig {
  partitionCount: number
  replicationFactor: number
  load: number
}

export const DEFAULT_RING_CONFIG: Readonly<RingConfig> = Object.freeze({ partitionCount: 100, replicationFactor: 10, load: 1.25 })

/** Upstream's placeholders in ring member names (`pkg/apis/config/defaults`). */
export const EMPTY_NODE_NAME = 'EMPTY_NODE_NAME'
export const EMPTY_POD_NAME = 'EMPTY_POD_NAME'

interface Point { hash: bigint, member: string }

/**
 * A consistent-hash ring with bounded loads, computing the same partition
 * owners as `github.com/buraksezer/consistent` v0.9.0 with `cespare/xxhash`
 * (what upstream EdgeMesh uses), so Go and TypeScript agents send a key to the
 * same member:
 *
 * - each member has `replicationFactor` points `xxh64(member + decimal(i))`,
 *   sorted ascending;
 * - partition `p` hashes the 8 little-endian bytes of `p`, starts at the first
 *   point ≥ that hash (wrapping) and goes to the first member along the ring
 *   whose load + 1 ≤ `ceil(floor(partitionCount / members) × load)`;
 * - a key belongs to partition `xxh64(key) % partitionCount`.
 *
 * The result depends only on the member *set*, not on insertion order. Where
 * upstream panics (more members than partitions, or no member with room
 * within the points it scans), this ring gives the partition to the nearest
 * member regardless of load instead. Equal point hashes (a 64-bit collision)
 * are ordered by member name; upstream's map would keep one at random.
 */
export class HashRing {
  readonly members: readonly string[]
  readonly config: Readonly<RingConfig>
  readonly #points: Point[]
  /** Owner per partition. */
  readonly #owners: string[] = []
  /** Index into #points where each partition's search starts. */
  readonly #starts: number[] = []
  readonly #loads = new Map<string, number>()

  constructor (members: Iterable<string>, config: Readonly<RingConfig> = DEFAULT_RING_CONFIG) {
    this.config = config
    this.members = [...new Set(members)].sort()
    this.#points = []
    for (const member of this.members) {
      for (let i = 0; i < config.replicationFactor; i++) this.#points.push({ hash: xxh64(member + String(i)), member })
    }
    this.#points.sort((a, b) => a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : a.member < b.member ? -1 : a.member > b.member ? 1 : 0)
    if (this.members.length > 0) this.#distribute()
  }

  /** Partition of a key: `xxh64(key) % partitionCount`. */
  partitionOf (key: string): number {
    return Number(xxh64(key) % BigInt(this.config.partitionCount))
  }

  /** Owner of a partition, or undefined on an empty ring. */
  owner (partition: number): string | undefined {
    return this.#owners[partition]
  }

  /** The member a key belongs to (upstream `LocateKey`). */
  locate (key: string): string | undefined {
    return this.#owners[this.partitionOf(key)]
  }

  /** Partitions per member. */
  loads (): ReadonlyMap<string, number> {
    return this.#loads
  }

  /** The bound on partitions per member: `ceil(floor(partitionCount / members) × load)`. */
  averageLoad (): number {
    const n = this.members.length
    return n === 0 ? 0 : Math.ceil(Math.floor(this.config.partitionCount / n) * this.config.load)
  }

  /**
   * Distinct members in ring order for a partition, owner first: the failover
   * order when the owner is excluded on a retry (not in upstream, which never
   * retries elsewhere).
   */
  * successors (partition: number): Generator<string> {
    const owner = this.#owners[partition]
    if (owner === undefined) return
    yield owner
    const seen = new Set([owner])
    const start = this.#starts[partition] as number
    const n = this.#points.length
    for (let i = 0; i < n && seen.size < this.members.length; i++) {
      const member = (this.#points[(start + i) % n] as Point).member
      if (seen.has(member)) continue
      seen.add(member)
      yield member
    }
  }

  #distribute (): void {
    const avg = this.averageLoad()
    const bound = avg < 1 ? Infinity : avg
    const n = this.#points.length
    for (let p = 0; p < this.config.partitionCount; p++) {
      const start = lowerBound(this.#points, xxh64Uint64LE(p))
      this.#starts.push(start)
      // Upstream examines at most n - 1 points (its counter is checked before the first look) and panics after.
      let owner: string | undefined
      for (let count = 1, idx = start; count < n; count++, idx = (idx + 1) % n) {
        const member = (this.#points[idx] as Point).member
        if ((this.#loads.get(member) ?? 0) + 1 <= bound) { owner = member; break }
      }
      owner ??= (this.#points[start] as Point).member
      this.#owners.push(owner)
      this.#loads.set(owner, (this.#loads.get(owner) ?? 0) + 1)
    }
  }
}

/** First index whose hash is ≥ `hash`, 0 when past the end (the ring wraps). */
function lowerBound (points: readonly Point[], hash: bigint): number {
  let lo = 0
  let hi = points.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((points[mid] as Point).hash < hash) lo = mid + 1
    else hi = mid
  }
  return lo === points.length ? 0 : lo
}

/** Upstream's ring member name: `nodeName:podName:ip:port` (JoinHostPort, so IPv6 is bracketed). */
export function ringMemberName (ep: Endpoint, portName: string): string {
  const node = ep.nodeName === undefined || ep.nodeName === '' ? EMPTY_NODE_NAME : ep.nodeName
  const pod = ep.podName === undefined || ep.podName === '' ? EMPTY_POD_NAME : ep.podName
  const host = ep.ip.includes(':') ? `[${ep.ip}]` : ep.ip
  return `${node}:${pod}:${host}:${targetPort(ep, portName) ?? 0}`
}

/** What a consistent-hash policy hashes. */
export type HashKeySource =
  | { type: 'header', name: string }
  | { type: 'cookie', name: string }
  /**
   * The client IP. `withPort` hashes `ip:port` instead, which is what upstream
   * actually does for `useSourceIp` (so every connection lands anywhere);
   * only for bug-compatibility with mixed Go nodes.
   */
  | { type: 'sourceIp', withPort?: boolean }

export interface ConsistentHashInit {
  key: HashKeySource
  /** @default DEFAULT_RING_CONFIG */
  ring?: Readonly<RingConfig>
  /** Service port name: endpoints are identified by their target port for it. @default '' */
  portName?: string
  /**
   * When the key is absent (no such header or cookie, no client IP):
   * `'fallback'` uses `fallback`, as Envoy does; `'hash-empty'` hashes the
   * empty string, as upstream does (all such traffic to one endpoint).
   * @default 'fallback'
   */
  missingKey?: 'fallback' | 'hash-empty'
  /** @default a RoundRobinPolicy for the same port */
  fallback?: LbPolicy
}

/**
 * DestinationRule `consistentHash`: the key's partition owner on a
 * bounded-load ring of the candidates. The ring is rebuilt when the candidate
 * set changes (not when only the array or its order does). On a retry the
 * owner's ring successors are tried in order, so a key still fails over
 * deterministically.
 */
export class ConsistentHashPolicy implements LbPolicy {
  readonly name = 'CONSISTENT_HASH'
  readonly key: HashKeySource
  readonly #ringConfig: Readonly<RingConfig>
  readonly #portName: string
  readonly #missingKey: 'fallback' | 'hash-empty'
  readonly #fallback: LbPolicy
  #lastInput: readonly Endpoint[] | undefined
  #signature = ''
  #ring: HashRing | undefined
  #byMember = new Map<string, Endpoint>()

  constructor (init: ConsistentHashInit) {
    this.key = init.key
    this.#ringConfig = init.ring ?? DEFAULT_RING_CONFIG
    this.#portName = init.portName ?? ''
    this.#missingKey = init.missingKey ?? 'fallback'
    this.#fallback = init.fallback ?? new RoundRobinPolicy({ portName: this.#portName })
  }

  /** The ring for the last candidates seen (for tests and debugging). */
  get ring (): HashRing | undefined { return this.#ring }

  pick (endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    if (endpoints.length === 0) return undefined
    let value = this.keyValue(ctx)
    if (value === undefined) {
      if (this.#missingKey === 'fallback') return this.#fallback.pick(endpoints, ctx)
      value = ''
    }
    const ring = this.#ringFor(endpoints)
    for (const member of ring.successors(ring.partitionOf(value))) {
      const ep = this.#byMember.get(member) as Endpoint
      if (ctx.exclude?.has(endpointKey(ep, this.#portName)) !== true) return ep
    }
    return undefined
  }

  /** The string this policy hashes for a connection, or undefined when the context lacks it. */
  keyValue (ctx: PickContext): string | undefined {
    switch (this.key.type) {
      case 'header': return ctx.header?.(this.key.name)
      case 'cookie': return ctx.cookie?.(this.key.name)
      case 'sourceIp': {
        const ip = ctx.clientIP
        if (ip === undefined || ip === '') return undefined
        if (this.key.withPort !== true) return ip
        return `${ip.includes(':') ? `[${ip}]` : ip}:${ctx.clientPort ?? 0}`
      }
    }
  }

  #ringFor (endpoints: readonly Endpoint[]): HashRing {
    if (endpoints !== this.#lastInput || this.#ring === undefined) {
      this.#lastInput = endpoints
      const byMember = new Map<string, Endpoint>()
      for (const ep of endpoints) byMember.set(ringMemberName(ep, this.#portName), ep)
      const signature = [...byMember.keys()].sort().join('\n')
      this.#byMember = byMember
      if (signature !== this.#signature || this.#ring === undefined) {
        this.#signature = signature
        this.#ring = new HashRing(byMember.keys(), this.#ringConfig)
      }
    }
    return this.#ring
  }
}
