import type { Component } from '../lifecycle/component.ts'
import type { KubeObject } from './types.ts'

/**
 * Event handlers an informer calls, in event order, after its store has been
 * updated. Handlers must only record (e.g. into a change tracker); they never
 * touch the data plane directly.
 */
export interface InformerHandlers<T extends KubeObject> {
  onAdd? (obj: T): void
  onUpdate? (previous: T, current: T): void
  onDelete? (obj: T): void
  /** Called once, after the first complete list has been delivered. */
  onSynced? (): void
}

/**
 * A cache of one resource kept current by list + watch (or by another source
 * with the same semantics: a YAML file, a persisted snapshot).
 */
export interface Informer<T extends KubeObject> extends Component {
  /** Registers handlers; must be called before start(). */
  addHandlers (handlers: InformerHandlers<T>): void
  /** True once the first list has been applied to the store. */
  hasSynced (): boolean
  /** Current objects; keys are `namespace/name`. */
  list (): T[]
  get (key: string): T | undefined
}
