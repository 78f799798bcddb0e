/**
 * List + watch cache of one resource, like client-go's reflector + store but
 * with a plain Map and no delta FIFO: events are applied and handlers called
 * in order on one async loop.
 */
import { setTimeout as delay } from 'node:timers/promises'
import type { StopOptions } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { Informer, InformerHandlers } from './informer-types.ts'
import type { KubeObject, ResourceType, WatchEvent } from './types.ts'
import { objectKey } from './types.ts'
import type { KubeClient, WatchStream } from './client.ts'
import type { KubeMetrics, KubeResourceMetrics } from './metrics.ts'
import {
  KubeConfigError, KubeForbiddenError, KubeInformerStoppedError, KubeRequestError, KubeResourceExpiredError,
  KubeResourceNotFoundError, KubeUnauthorizedError, KubeUnreachableError
} from './errors.ts'

export interface BackoffOptions {
  /** @default 500 */
  initialMs?: number
  /** @default 30_000 */
  maxMs?: number
  /** @default 2 */
  factor?: number
  /** Each delay is stretched by up to this fraction at random. @default 0.5 */
  jitter?: number
}

export interface KubeInformerOptions<T extends KubeObject> {
  resource: ResourceType
  /** Restricts to one namespace; all namespaces when absent. */
  namespace?: string
  labelSelector?: string
  fieldSelector?: string
  /**
   * Narrows each object before it is stored (drop managedFields, unused
   * spec fields). Must keep metadata.name/namespace/resourceVersion.
   */
  transform?: (obj: T) => T
  /** Re-delivers onUpdate(obj, obj) for every object this often; 0 = off. @default 0 */
  resyncMs?: number
  /** List page size. @default 500 */
  pageSize?: number
  /** Server-side watch duration; random in [300, 600) s when absent, as client-go. */
  watchTimeoutSeconds?: number
  backoff?: BackoffOptions
  /**
   * Refusals (401, 403) are retried quietly this long before they are logged
   * as errors with the fix: an API server that just started refuses until its
   * RBAC cache is loaded, and a rotated token is re-read on the next try. @default 30000
   */
  refusalGraceMs?: number
}

export interface KubeInformerDeps {
  client: KubeClient
  logger: Logger
  /** Shared by every informer on one registry; series are labelled by resource. */
  metrics?: KubeMetrics
}

/** Counters for logs and tests. */
export interface InformerStats {
  lists: number
  watches: number
  /** Watches that ended with 410 Gone and forced a relist. */
  expired: number
  errors: number
  resourceVersion: string
  lastError: Error | undefined
}

/** Errors that more retries cannot fix: start() rejects with them. */
function isFatal (err: unknown): boolean {
  return err instanceof KubeResourceNotFoundError || err instanceof KubeConfigError
}

/** The server refused the credentials or the verb: retried, and logged with the fix once it persists. */
function isRefusal (err: unknown): err is KubeForbiddenError | KubeUnauthorizedError {
  return err instanceof KubeForbiddenError || err instanceof KubeUnauthorizedError
}

/** A server that cannot be reached is tried again this often: a refused connection costs it nothing, and a Service created right after an outage should reach the node within seconds. */
const UNREACHABLE_RETRY_MS = 1000
/** A refusal that persists is logged as an error at most this often. */
const REFUSAL_LOG_EVERY_MS = 5 * 60_000

export class KubeInformer<T extends KubeObject> implements Informer<T> {
  readonly name: string
  readonly #opts: KubeInformerOptions<T>
  readonly #client: KubeClient
  readonly #log: Logger
  readonly #metricsSource: KubeMetrics | undefined
  #metrics: KubeResourceMetrics | undefined
  readonly #handlers: Array<InformerHandlers<T>> = []
  readonly #store = new Map<string, T>()
  readonly #stats: InformerStats = { lists: 0, watches: 0, expired: 0, errors: 0, resourceVersion: '', lastError: undefined }
  #synced = false
  #started = false
  #stopped = false
  #abort = new AbortController()
  #loop: Promise<void> | undefined
  #resyncTimer: NodeJS.Timeout | undefined
  #syncWaiters: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  #failures = 0
  /** Set when the server could not be reached; cleared when it serves a list or a watch again. */
  #recovering = false
  /** When the refusals (401/403) in a row began; undefined while requests succeed. */
  #refusedSince: number | undefined
  #refusalLoggedAt = -Infinity
  /** Watch events applied since the last list: a 410 with none means the list itself is already too old. */
  #eventsSinceList = 0

  constructor (options: KubeInformerOptions<T>, deps: KubeInformerDeps) {
    this.#opts = options
    this.#client = deps.client
    this.name = `kube:${options.resource.resource}`
    this.#log = deps.logger.forComponent(this.name)
    this.#metricsSource = deps.metrics
  }

  addHandlers (handlers: InformerHandlers<T>): void {
    if (this.#started) throw new Error(`${this.name}: addHandlers() must be called before start()`)
    this.#handlers.push(handlers)
  }

  hasSynced (): boolean { return this.#synced }
  isReady (): boolean { return this.#synced }
  list (): T[] { return [...this.#store.values()] }
  get (key: string): T | undefined { return this.#store.get(key) }
  stats (): Readonly<InformerStats> { return { ...this.#stats } }

  /**
   * Lists, then opens the first watch. Rejects only when no retry can help
   * (resource type not served, bad config); on refusals (401, 403) and
   * transient failures (server unreachable, 5xx) resolves unsynced and keeps
   * retrying in the background.
   */
  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    // Series appear at start, so an informer built as a fallback and never started has none.
    this.#metrics = this.#metricsSource?.forResource(this.#opts.resource.resource)
    const signal = this.#abort.signal
    let firstWatch: WatchStream<T> | undefined
    let needList = true
    try {
      await this.#relist(signal)
      needList = false
      firstWatch = await this.#openWatch(signal)
    } catch (err) {
      if (signal.aborted) return
      if (isFatal(err)) {
        this.#stopped = true
        this.#abort.abort()
        this.#metrics?.remove()
        this.#rejectWaiters(err as Error)
        throw err
      }
      this.#noteError(err, needList ? 'list failed; retrying in the background' : 'watch failed; retrying in the background')
    }
    this.#loop = this.#run(needList, firstWatch)
    const resync = this.#opts.resyncMs ?? 0
    if (resync > 0) {
      this.#resyncTimer = setInterval(() => this.#resync(), resync)
      this.#resyncTimer.unref()
    }
  }

  /** Resolves once the first list has been applied; rejects if the signal aborts or the informer stops. */
  waitForSync (signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve()
    if (this.#stopped) return Promise.reject(new KubeInformerStoppedError(this.name))
    signal?.throwIfAborted()
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => { signal?.removeEventListener('abort', onAbort); resolve() },
        reject: (err: Error) => { signal?.removeEventListener('abort', onAbort); reject(err) }
      }
      const onAbort = (): void => {
        this.#syncWaiters = this.#syncWaiters.filter(w => w !== waiter)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#syncWaiters.push(waiter)
    })
  }

  async stop (_options?: StopOptions): Promise<void> {
    if (this.#stopped && this.#loop === undefined) return
    this.#stopped = true
    this.#abort.abort()
    if (this.#resyncTimer !== undefined) clearInterval(this.#resyncTimer)
    this.#resyncTimer = undefined
    this.#rejectWaiters(new KubeInformerStoppedError(this.name))
    const loop = this.#loop
    this.#loop = undefined
    await loop
  }

  async #run (needList: boolean, firstWatch: WatchStream<T> | undefined): Promise<void> {
    const signal = this.#abort.signal
    let watch = firstWatch
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.#relist(signal)
          needList = false
          this.#recovering = false
        }
        if (watch === undefined) {
          watch = await this.#openWatch(signal)
          this.#recovering = false
        }
        const opened = performance.now()
        const events = await this.#consume(watch, signal)
        watch = undefined
        if (signal.aborted) break
        this.#metrics?.watchRestarted()
        // A watch that closes at once without events is a failure in disguise (proxy, metaServer quirk).
        if (events === 0 && performance.now() - opened < 1000) {
          await this.#sleep(signal, this.#nextBackoff())
        } else {
          this.#failures = 0
          // The server ended a healthy watch: proof of contact even on a quiet cluster without bookmarks.
          this.#metrics?.heard()
        }
      } catch (err) {
        // True when an open watch failed, not the list or the request that opens one.
        const watchFailed = watch !== undefined
        watch?.close()
        watch = undefined
        if (signal.aborted) break
        if (watchFailed) this.#metrics?.watchRestarted()
        if (err instanceof KubeResourceExpiredError) {
          this.#stats.expired++
          this.#log.info('watch expired; relisting', { resourceVersion: this.#stats.resourceVersion, reason: err.message })
          needList = true
          // Relisting again at once would loop hot against a server that expires fresh lists.
          if (this.#eventsSinceList === 0) await this.#sleep(signal, this.#nextBackoff())
          continue
        }
        const wait = this.#noteError(err, needList ? 'list failed' : 'watch failed')
        await this.#sleep(signal, wait)
      }
    }
    watch?.close()
  }

  #noteError (err: unknown, msg: string): number {
    this.#stats.errors++
    this.#stats.lastError = err instanceof Error ? err : new Error(String(err))
    const unreachable = err instanceof KubeUnreachableError
    if (unreachable) this.#recovering = true
    // An API server that cannot be reached is tried every second, and the backoff does not grow
    // meanwhile; one that just came back (5xx, 429 or refusals while it starts) is too, until it
    // serves a list or a watch: what changed during an outage arrives within a second of its end.
    let wait = this.#recovering ? Math.min(this.#nextBackoff(!unreachable), UNREACHABLE_RETRY_MS) : this.#nextBackoff()
    if (err instanceof KubeRequestError && err.retryAfterMs !== undefined) wait = Math.max(wait, err.retryAfterMs)
    const fields = { err: this.#stats.lastError.message, code: (err as { code?: unknown }).code, backoffMs: Math.round(wait) }
    if (isRefusal(err)) this.#noteRefusal(err, msg, fields)
    else if (isFatal(err)) this.#log.error(msg, fields)
    else this.#log.warn(msg, fields)
    return wait
  }

  /** Quiet (no ClusterRole hint) while the refusal may be the server warming up; then an error with the fix, repeated rarely. */
  #noteRefusal (err: KubeForbiddenError | KubeUnauthorizedError, msg: string, fields: Record<string, unknown>): void {
    const now = performance.now()
    this.#refusedSince ??= now
    if (now - this.#refusedSince < (this.#opts.refusalGraceMs ?? 30_000)) {
      const status = err instanceof KubeForbiddenError ? 403 : 401
      this.#log.warn(`${msg}: refused (${status}); retrying, as an API server that just started refuses until its RBAC cache is loaded`, { code: err.code, backoffMs: fields.backoffMs })
      return
    }
    if (now - this.#refusalLoggedAt < REFUSAL_LOG_EVERY_MS) return
    this.#refusalLoggedAt = now
    this.#log.error(`${msg}: still refused after ${Math.round((now - this.#refusedSince) / 1000)} s; serving what is known and retrying`, fields)
  }

  #nextBackoff (advance = true): number {
    const b = this.#opts.backoff ?? {}
    const initial = b.initialMs ?? 500
    const max = b.maxMs ?? 30_000
    const base = Math.min(max, initial * Math.pow(b.factor ?? 2, this.#failures))
    if (advance) this.#failures++
    return Math.min(max, base * (1 + (b.jitter ?? 0.5) * Math.random()))
  }

  async #sleep (signal: AbortSignal, ms: number): Promise<void> {
    try {
      await delay(ms, undefined, { signal })
    } catch {
      // Aborted: the loop condition ends it.
    }
  }

  async #openWatch (signal: AbortSignal): Promise<WatchStream<T>> {
    const o = this.#opts
    const w = await this.#client.watch<T>(o.resource, {
      namespace: o.namespace,
      labelSelector: o.labelSelector,
      fieldSelector: o.fieldSelector,
      resourceVersion: this.#stats.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: o.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300),
      signal
    })
    this.#stats.watches++
    return w
  }

  /** Applies watch events until the server ends the watch; returns how many arrived. */
  async #consume (watch: WatchStream<T>, signal: AbortSignal): Promise<number> {
    let n = 0
    for await (const ev of watch) {
      if (signal.aborted) break
      n++
      this.#apply(ev)
    }
    return n
  }

  #apply (ev: WatchEvent<T>): void {
    const rv = ev.object?.metadata?.resourceVersion
    this.#eventsSinceList++
    this.#metrics?.heard()
    if (ev.type === 'BOOKMARK') {
      if (rv !== undefined) this.#stats.resourceVersion = rv
      return
    }
    if (ev.object?.metadata?.name === undefined) return
    const obj = this.#narrow(ev.object)
    const key = objectKey(obj)
    this.#log.debug('event', { type: ev.type, key, resourceVersion: rv })
    const prev = this.#store.get(key)
    if (ev.type === 'DELETED') {
      if (prev !== undefined) {
        this.#store.delete(key)
        this.#emit(h => h.onDelete?.(obj))
      }
    } else {
      this.#store.set(key, obj)
      if (prev === undefined) this.#emit(h => h.onAdd?.(obj))
      else this.#emit(h => h.onUpdate?.(prev, obj))
    }
    if (rv !== undefined) this.#stats.resourceVersion = rv
  }

  /**
   * Lists everything and delivers the difference to the store as
   * add/update/delete, so nothing stale or lost survives a 410 or an outage.
   * Falls back to an unpaged list if a continue token expires mid-way.
   */
  async #relist (signal: AbortSignal): Promise<void> {
    const o = this.#opts
    const started = performance.now()
    const seen = new Set<string>()
    let added = 0
    let updated = 0
    let deleted = 0
    let rv = ''
    const pageSize = o.pageSize ?? 500
    for (let attempt = 0; ; attempt++) {
      try {
        const pages = this.#client.listPages<T>(o.resource, {
          namespace: o.namespace,
          labelSelector: o.labelSelector,
          fieldSelector: o.fieldSelector,
          limit: attempt === 0 ? pageSize : 0,
          signal
        })
        for await (const page of pages) {
          for (const raw of page.items) {
            const obj = this.#narrow(raw)
            const key = objectKey(obj)
            seen.add(key)
            const prev = this.#store.get(key)
            if (prev === undefined) {
              this.#store.set(key, obj)
              added++
              this.#emit(h => h.onAdd?.(obj))
            } else if (prev.metadata.resourceVersion !== obj.metadata.resourceVersion) {
              this.#store.set(key, obj)
              updated++
              this.#emit(h => h.onUpdate?.(prev, obj))
            }
          }
          rv = page.metadata.resourceVersion
        }
        this.#refusedSince = undefined
        this.#refusalLoggedAt = -Infinity
        break
      } catch (err) {
        if (attempt === 0 && err instanceof KubeResourceExpiredError && !signal.aborted) continue
        throw err
      }
    }
    for (const [key, prev] of this.#store) {
      if (seen.has(key)) continue
      this.#store.delete(key)
      deleted++
      this.#emit(h => h.onDelete?.(prev))
    }
    if (this.#stats.lists > 0) this.#metrics?.relisted()
    this.#metrics?.heard()
    this.#stats.lists++
    this.#stats.resourceVersion = rv
    this.#eventsSinceList = 0
    const ms = Math.round(performance.now() - started)
    if (!this.#synced) {
      this.#synced = true
      this.#log.info('synced', { count: this.#store.size, ms })
      this.#emit(h => h.onSynced?.())
      for (const w of this.#syncWaiters) w.resolve()
      this.#syncWaiters = []
    } else {
      this.#log.info('relisted', { count: this.#store.size, added, updated, deleted, ms })
    }
  }

  #resync (): void {
    if (!this.#synced || this.#stopped) return
    for (const obj of this.#store.values()) this.#emit(h => h.onUpdate?.(obj, obj))
  }

  #narrow (obj: T): T {
    return this.#opts.transform !== undefined ? this.#opts.transform(obj) : obj
  }

  #emit (call: (h: InformerHandlers<T>) => void): void {
    for (const h of this.#handlers) {
      try {
        call(h)
      } catch (err) {
        // A faulty handler must not stop the cache from following the server.
        this.#log.error('handler threw', { err: err instanceof Error ? err.message : String(err) })
      }
    }
  }

  #rejectWaiters (err: Error): void {
    for (const w of this.#syncWaiters) w.reject(err)
    this.#syncWaiters = []
  }
}

/**
 * Starts `primary`; if the server does not serve its resource type (404),
 * starts `fallback()` instead. Used for EndpointSlice → Endpoints on old
 * metaServers.
 */
export async function startWithFallback<P extends KubeObject, F extends KubeObject> (
  primary: KubeInformer<P>,
  fallback: () => KubeInformer<F>
): Promise<{ kind: 'primary', informer: KubeInformer<P> } | { kind: 'fallback', informer: KubeInformer<F> }> {
  try {
    await primary.start()
    return { kind: 'primary', informer: primary }
  } catch (err) {
    if (!(err instanceof KubeResourceNotFoundError)) throw err
    const informer = fallback()
    await informer.start()
    return { kind: 'fallback', informer }
  }
}
