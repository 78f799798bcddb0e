/**
 * Frees the buffers that copying between sockets leaves behind, before V8
 * turns them into full garbage collections.
 *
 * Every chunk a Node socket (or TLS socket) reads is a new ArrayBuffer. V8
 * frees young ones in a young-generation collection, which runs when the JS
 * heap's young space fills. A copied chunk costs that space only a few hundred
 * bytes, so such collections are rare. Meanwhile the chunks' memory counts
 * towards the old generation's limit, and V8 runs full mark-compacts instead:
 * in bench/tunnel, 7 per second at 150 MB/s, which took a third of each
 * agent's CPU (the agent's heap is 16 MB, so each one marks all of it).
 * Collecting the young generation after every few MB copied frees the chunks
 * for about a millisecond each: the TLS data path went from about 130 to 240
 * MB/s in that bench, and the proxy's userspace path doubled in bench/proxy.
 */
import type { Readable } from 'node:stream'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Counter } from 'prom-client'
import type { Registry } from 'prom-client'

/** What a module that copies between streams needs: a place to report each stream it reads from. */
export interface CopiedStreams {
  track (stream: Readable): void
  /** Bytes copied in buffers no tracked stream delivers (e.g. a protocol stack's own layers). */
  add (bytes: number): void
}

export class BufferReclaimerMetrics {
  readonly collections: Counter
  constructor (registers: Registry) {
    this.collections = new Counter({
      name: 'edgemesh_net_buffer_collections_total',
      help: 'Young-generation collections run after every few MB copied between sockets (frees read buffers before they cost a full collection).',
      registers: [registers]
    })
  }
}

/** 4 MiB: at 300 MB/s that is 75 collections a second of about 1 ms each, against full collections of 10–20 ms. */
const DEFAULT_EVERY_BYTES = 4 * 1024 * 1024

export class BufferReclaimer implements CopiedStreams {
  readonly #everyBytes: number
  readonly #metrics: BufferReclaimerMetrics | undefined
  // undefined: not looked up yet (the lookup sets a V8 flag, so not in the constructor); null: not available.
  #collect: (() => void) | null | undefined
  #bytes = 0

  constructor (deps: { metrics?: Registry, collect?: () => void } = {}, init: { everyBytes?: number } = {}) {
    this.#everyBytes = init.everyBytes ?? DEFAULT_EVERY_BYTES
    this.#metrics = deps.metrics === undefined ? undefined : new BufferReclaimerMetrics(deps.metrics)
    this.#collect = deps.collect
  }

  /**
   * Counts what `stream` delivers. Call it in the same tick as `pipe()`: the
   * listener it adds starts the flow too.
   */
  track (stream: Readable): void {
    stream.on('data', this.#onData)
  }

  add (bytes: number): void {
    this.#bytes += bytes
    if (this.#bytes >= this.#everyBytes) this.#reclaim()
  }

  readonly #onData = (chunk: { length: number }): void => { this.add(chunk.length) }

  #reclaim (): void {
    this.#bytes = 0
    if (this.#collect === undefined) this.#collect = youngGenerationCollector() ?? null
    if (this.#collect === null) return
    this.#collect()
    this.#metrics?.collections.inc()
  }
}

/**
 * V8's `gc()` asked for a young-generation collection. A context created
 * after `--expose-gc` is set carries `gc`; the main context does not, so
 * nothing else in the process sees it. Undefined if V8 refuses.
 */
export function youngGenerationCollector (): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    if (typeof gc !== 'function') return undefined
    return () => { (gc as (options: { type: 'minor' }) => void)({ type: 'minor' }) }
  } catch {
    return undefined
  }
}
