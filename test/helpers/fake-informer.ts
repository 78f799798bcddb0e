import type { Informer, InformerHandlers } from '../../src/kube/informer-types.ts'
import { objectKey } from '../../src/kube/types.ts'
import type { KubeObject } from '../../src/kube/types.ts'

/** An in-memory Informer: tests add/update/delete objects and decide when it syncs. */
export class FakeInformer<T extends KubeObject> implements Informer<T> {
  readonly name: string
  readonly #handlers: Array<InformerHandlers<T>> = []
  readonly #store = new Map<string, T>()
  #synced = false
  started = false
  stopped = false
  /** When false, start() leaves the informer unsynced (an unreachable API server). */
  syncOnStart: boolean

  constructor (name = 'fake', initial: T[] = [], syncOnStart = true) {
    this.name = name
    for (const o of initial) this.#store.set(objectKey(o), o)
    this.syncOnStart = syncOnStart
  }

  addHandlers (h: InformerHandlers<T>): void { this.#handlers.push(h) }
  hasSynced (): boolean { return this.#synced }
  list (): T[] { return [...this.#store.values()] }
  get (key: string): T | undefined { return this.#store.get(key) }
  async start (): Promise<void> { this.started = true; if (this.syncOnStart) this.sync() }
  async stop (): Promise<void> { this.stopped = true }

  sync (): void {
    if (this.#synced) return
    for (const o of this.#store.values()) for (const h of this.#handlers) h.onAdd?.(o)
    this.#synced = true
    for (const h of this.#handlers) h.onSynced?.()
  }

  upsert (o: T): void {
    const key = objectKey(o)
    const prev = this.#store.get(key)
    this.#store.set(key, o)
    if (!this.#synced) return
    for (const h of this.#handlers) prev === undefined ? h.onAdd?.(o) : h.onUpdate?.(prev, o)
  }

  remove (key: string): void {
    const prev = this.#store.get(key)
    if (prev === undefined) return
    this.#store.delete(key)
    if (this.#synced) for (const h of this.#handlers) h.onDelete?.(prev)
  }
}
