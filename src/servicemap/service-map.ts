import { isDeepStrictEqual } from 'node:util'
import type { Registry } from 'prom-client'
import type { Component, StopOptions } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { Informer } from '../kube/informer-types.ts'
import { objectKey } from '../kube/types.ts'
import { mergeEndpoints } from './build.ts'
import { ServiceMapMetrics } from './metrics.ts'
import type { CompactService, CompactSlice } from './build.ts'
import type { ServiceFilterMode } from './filter.ts'
import type { StateStore } from './state-store.ts'
import type { ServiceChange, ServiceEntry, ServiceKey, ServiceMapView } from './types.ts'

export interface ServiceMapDeps {
  logger: Logger
  /** Stores compactService() objects (use it as the informer transform). */
  services: Informer<CompactService>
  /** Stores compactSlice() objects. */
  endpointSlices: Informer<CompactSlice>
  /** Persists the last live state and serves it when the API is unreachable at start. */
  persistence?: StateStore
  /** Registry the `edgemesh_servicemap_*` metrics are registered on (one ServiceMap per registry). */
  metrics?: Registry
}

export interface ServiceMapInit {
  /** Kept for consumers (`serviceProxyFilter`); the map itself holds every service. */
  serviceFilterMode: ServiceFilterMode
  nodeName?: string
  /** How long to wait for the live sources before serving persisted state. @default 5000 */
  syncTimeoutMs?: number
  /** Minimum delay between state file writes. @default 2000 */
  persistIntervalMs?: number
}

export type ServiceMapSource = 'live' | 'persisted' | 'none'

/**
 * The typed service map: Services + EndpointSlices → ServiceEntry per
 * service, published to subscribers as batches of incremental changes.
 *
 * Informer handlers only mark services dirty; a coalescing flush (next
 * macrotask) rebuilds just those entries, so one endpoint change costs one
 * service's rebuild whatever the map's size. Nothing is published before the
 * first sync (live, or persisted after `syncTimeoutMs`).
 */
export class ServiceMap implements ServiceMapView, Component {
  readonly name = 'servicemap'
  readonly serviceFilterMode: ServiceFilterMode
  readonly #deps: ServiceMapDeps
  readonly #init: ServiceMapInit
  readonly #log: Logger
  #entries = new Map<ServiceKey, ServiceEntry>()
  readonly #byClusterIP = new Map<string, ServiceKey>()
  /** Slices per service key, keyed by slice key. Guarded by the single JS thread. */
  readonly #slicesByService = new Map<ServiceKey, Map<string, CompactSlice>>()
  readonly #dirty = new Set<ServiceKey>()
  readonly #listeners = new Set<(changes: readonly ServiceChange[]) => void>()
  #source: ServiceMapSource = 'none'
  #flushScheduled: NodeJS.Immediate | undefined
  #syncTimer: NodeJS.Timeout | undefined
  #persistTimer: NodeJS.Timeout | undefined
  #persistPending = false
  /** The save in flight, if any: stop() waits for it so exit never cuts a write. */
  #persisting: Promise<void> | undefined
  #lastPersist = 0
  #started = false
  #stopped = false
  readonly #metrics: ServiceMapMetrics | undefined

  constructor (deps: ServiceMapDeps, init: ServiceMapInit) {
    this.#deps = deps
    this.#init = init
    this.#log = deps.logger
    this.serviceFilterMode = init.serviceFilterMode
    if (deps.metrics !== undefined) {
      this.#metrics = new ServiceMapMetrics(deps.metrics)
      this.#metrics.view = () => ({ services: this.#entries.size, source: this.#source })
    }
  }

  hasSynced (): boolean { return this.#source !== 'none' }
  isReady (): boolean { return this.hasSynced() }
  /** Where the current view came from, for status output. */
  source (): ServiceMapSource { return this.#source }
  get (key: ServiceKey): ServiceEntry | undefined { return this.#entries.get(key) }
  snapshot (): ReadonlyMap<ServiceKey, ServiceEntry> { return new Map(this.#entries) }
  byClusterIP (ip: string): ServiceEntry | undefined {
    const key = this.#byClusterIP.get(ip)
    return key === undefined ? undefined : this.#entries.get(key)
  }

  subscribe (listener: (changes: readonly ServiceChange[]) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    const { services, endpointSlices } = this.#deps
    services.addHandlers({
      onAdd: s => this.#markDirty(objectKey(s)),
      onUpdate: (_, s) => this.#markDirty(objectKey(s)),
      onDelete: s => this.#markDirty(objectKey(s)),
      onSynced: () => this.#onInputSynced()
    })
    endpointSlices.addHandlers({
      onAdd: s => this.#sliceChanged(undefined, s),
      onUpdate: (prev, s) => this.#sliceChanged(prev, s),
      onDelete: s => this.#sliceChanged(s, undefined),
      onSynced: () => this.#onInputSynced()
    })
    if (this.#deps.persistence !== undefined) {
      this.#syncTimer = setTimeout(() => { this.#servePersisted().catch(err => this.#log.error('serving persisted state failed', { err })) }, this.#init.syncTimeoutMs ?? 5000)
    }
    try {
      await services.start()
      await endpointSlices.start()
    } catch (err) {
      await this.stop()
      throw err
    }
    this.#onInputSynced()
  }

  async stop (options?: StopOptions): Promise<void> {
    if (this.#stopped || !this.#started) return
    this.#stopped = true
    clearTimeout(this.#syncTimer)
    clearTimeout(this.#persistTimer)
    if (this.#flushScheduled !== undefined) clearImmediate(this.#flushScheduled)
    await this.#deps.endpointSlices.stop(options)
    await this.#deps.services.stop(options)
    await this.#persisting
    if (this.#persistPending) await this.#persist()
  }

  #sliceChanged (prev: CompactSlice | undefined, curr: CompactSlice | undefined): void {
    const sliceKey = objectKey((curr ?? prev) as CompactSlice)
    const before = prev?.serviceKey
    const after = curr?.serviceKey
    if (before !== undefined && before !== after) {
      const slices = this.#slicesByService.get(before)
      slices?.delete(sliceKey)
      if (slices?.size === 0) this.#slicesByService.delete(before)
      this.#markDirty(before)
    }
    if (after !== undefined && curr !== undefined) {
      let slices = this.#slicesByService.get(after)
      if (slices === undefined) this.#slicesByService.set(after, slices = new Map())
      slices.set(sliceKey, curr)
      this.#markDirty(after)
    }
  }

  #markDirty (key: ServiceKey): void {
    this.#dirty.add(key)
    if (this.#source === 'live' && this.#flushScheduled === undefined) {
      this.#flushScheduled = setImmediate(() => this.#flush())
    }
  }

  #live (): boolean {
    return this.#deps.services.hasSynced() && this.#deps.endpointSlices.hasSynced()
  }

  #onInputSynced (): void {
    if (this.#source === 'live' || this.#stopped || !this.#live()) return
    clearTimeout(this.#syncTimer)
    const wasPersisted = this.#source === 'persisted'
    this.#source = 'live'
    // Rebuild everything from the live stores; publish the difference to what was served.
    for (const key of this.#entries.keys()) this.#dirty.add(key)
    for (const s of this.#deps.services.list()) this.#dirty.add(objectKey(s))
    this.#flush(true)
    if (wasPersisted) this.#log.info('live state synced; replaced persisted state', { services: this.#entries.size })
  }

  async #servePersisted (): Promise<void> {
    if (this.#source !== 'none' || this.#stopped) return
    const store = this.#deps.persistence as StateStore
    let state
    try {
      state = await store.load()
    } catch (err) {
      this.#log.warn('persisted state unusable; waiting for the API server', { file: store.description, err: (err as Error).message })
      return
    }
    if (state === undefined) {
      this.#log.warn('API server unreachable and no persisted state yet; waiting', { file: store.description })
      return
    }
    if (this.#source !== 'none' || this.#stopped) return
    this.#source = 'persisted'
    this.#entries = state.entries
    for (const [key, e] of state.entries) for (const ip of e.service.clusterIPs) this.#byClusterIP.set(ip, key)
    this.#log.warn('API server unreachable; serving persisted state', { file: store.description, savedAt: state.savedAt, services: state.entries.size })
    this.#publish([...state.entries].map(([key, entry]) => ({ type: 'upsert', key, entry })), true)
  }

  #flush (always = false): void {
    this.#flushScheduled = undefined
    const changes: ServiceChange[] = []
    for (const key of this.#dirty) {
      const previous = this.#entries.get(key)
      const svc = this.#deps.services.get(key)
      if (svc === undefined) {
        if (previous !== undefined) {
          this.#entries.delete(key)
          this.#unindex(key, previous)
          changes.push({ type: 'delete', key, previous })
        }
        continue
      }
      const entry: ServiceEntry = {
        service: svc.info,
        endpoints: mergeEndpoints(this.#slicesByService.get(key)?.values() ?? [])
      }
      if (previous !== undefined && isDeepStrictEqual(previous, entry)) continue
      if (previous !== undefined) this.#unindex(key, previous)
      this.#entries.set(key, entry)
      for (const ip of entry.service.clusterIPs) this.#byClusterIP.set(ip, key)
      changes.push(previous === undefined ? { type: 'upsert', key, entry } : { type: 'upsert', key, entry, previous })
    }
    this.#dirty.clear()
    this.#publish(changes, always)
    if (changes.length > 0 || always) this.#schedulePersist()
  }

  #unindex (key: ServiceKey, entry: ServiceEntry): void {
    for (const ip of entry.service.clusterIPs) if (this.#byClusterIP.get(ip) === key) this.#byClusterIP.delete(ip)
  }

  #publish (changes: readonly ServiceChange[], always: boolean): void {
    if (changes.length === 0 && !always) return
    if (this.#metrics !== undefined) {
      let deletes = 0
      for (const c of changes) if (c.type === 'delete') deletes++
      this.#metrics.published(changes.length - deletes, deletes)
    }
    for (const listener of this.#listeners) {
      try {
        listener(changes)
      } catch (err) {
        // One broken consumer must not starve the others.
        this.#log.error('service map subscriber failed', { err })
      }
    }
  }

  #schedulePersist (): void {
    if (this.#deps.persistence === undefined || this.#source !== 'live') return
    this.#persistPending = true
    if (this.#persistTimer !== undefined) return
    const wait = Math.max(0, this.#lastPersist + (this.#init.persistIntervalMs ?? 2000) - Date.now())
    this.#persistTimer = setTimeout(() => {
      this.#persistTimer = undefined
      this.#persist().catch(err => this.#log.error('persisting failed', { err }))
    }, wait)
    this.#persistTimer.unref()
  }

  async #persist (): Promise<void> {
    const store = this.#deps.persistence
    if (store === undefined) return
    await this.#persisting
    this.#persistPending = false
    this.#lastPersist = Date.now()
    const saving = store.save(this.#entries).catch(err => {
      this.#log.warn('could not persist the service map', { file: store.description, err: (err as Error).message })
    })
    this.#persisting = saving
    await saving
    if (this.#persisting === saving) this.#persisting = undefined
  }
}
