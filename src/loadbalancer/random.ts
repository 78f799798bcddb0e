import { withoutExcluded } from './policy.ts'
import type { LbPolicy, PickContext, RandomSource } from './policy.ts'
import type { Endpoint } from '../servicemap/types.ts'

export interface RandomInit {
  /** Service port name: endpoints are identified by their target port for it. @default '' */
  portName?: string
  /** Randomness in [0, 1). @default Math.random */
  random?: RandomSource
}

/** DestinationRule `simple: RANDOM`: a uniform choice among the candidates not yet tried. */
export class RandomPolicy implements LbPolicy {
  readonly name = 'RANDOM'
  readonly #portName: string
  readonly #random: RandomSource

  constructor (init: RandomInit = {}) {
    this.#portName = init.portName ?? ''
    this.#random = init.random ?? Math.random
  }

  pick (endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    const candidates = withoutExcluded(endpoints, this.#portName, ctx.exclude)
    if (candidates.length === 0) return undefined
    const i = Math.min(candidates.length - 1, Math.floor(this.#random() * candidates.length))
    return candidates[i]
  }
}
