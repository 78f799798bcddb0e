import { endpointKey } from './policy.ts'
import type { LbPolicy, PickContext, RandomSource } from './policy.ts'
import type { Endpoint } from '../servicemap/types.ts'

export interface RoundRobinInit {
  /** Service port name: endpoints are identified by their target port for it. @default '' */
  portName?: string
  /** Chooses the first endpoint, so that agents do not all start on the same one. @default Math.random */
  random?: RandomSource
}

interface Keyed { key: string, ep: Endpoint }

/**
 * Round robin for one service port (the default policy, and DestinationRule
 * `simple: ROUND_ROBIN`).
 *
 * The cursor is the *key* (`ip:port`) of the last endpoint picked, not an
 * index: candidates are ordered by key and the next pick is the first key after
 * the cursor. Adding or removing endpoints therefore neither restarts the cycle
 * nor skips or repeats the others (upstream reshuffles and resets on every
 * change). The first pick starts at a random position.
 */
export class RoundRobinPolicy implements LbPolicy {
  readonly name = 'ROUND_ROBIN'
  readonly #portName: string
  readonly #random: RandomSource
  #cursor: string | undefined
  #lastInput: readonly Endpoint[] | undefined
  #sorted: Keyed[] = []

  constructor (init: RoundRobinInit = {}) {
    this.#portName = init.portName ?? ''
    this.#random = init.random ?? Math.random
  }

  pick (endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    const sorted = this.#sortedOf(endpoints)
    const n = sorted.length
    if (n === 0) return undefined
    const start = this.#cursor === undefined ? Math.min(n - 1, Math.floor(this.#random() * n)) : firstAfter(sorted, this.#cursor)
    for (let i = 0; i < n; i++) {
      const entry = sorted[(start + i) % n] as Keyed
      if (ctx.exclude?.has(entry.key) === true) continue
      this.#cursor = entry.key
      return entry.ep
    }
    return undefined
  }

  #sortedOf (endpoints: readonly Endpoint[]): Keyed[] {
    if (endpoints !== this.#lastInput) {
      this.#sorted = endpoints.map(ep => ({ key: endpointKey(ep, this.#portName), ep })).sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
      this.#lastInput = endpoints
    }
    return this.#sorted
  }
}

/** Index of the first entry whose key is greater than `key` (0 past the end: wrap). */
function firstAfter (sorted: readonly Keyed[], key: string): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((sorted[mid] as Keyed).key <= key) lo = mid + 1
    else hi = mid
  }
  return lo === sorted.length ? 0 : lo
}
