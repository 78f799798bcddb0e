/**
 * Informer metrics on an injected prom-client Registry (names `edgemesh_kube_*`).
 * One instance serves every informer of a registry (a registry refuses a
 * name twice); each informer gets its series with `forResource`.
 */
import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'

/** One informer's series, labelled with its resource (`services`, `endpointslices`). */
export interface KubeResourceMetrics {
  /** A watch ended or failed while the informer ran; it is reopened (after a relist for 410). */
  watchRestarted (): void
  /** A full list after the first one (the watch expired, or a list failed). */
  relisted (): void
  /** Heard from the server: a list, a watch event, or a watch that ran until the server ended it. */
  heard (): void
  /** Drops the series: the resource is not served (a fallback informer takes over). */
  remove (): void
}

export class KubeMetrics {
  readonly watchRestarts: Counter<'resource'>
  readonly relists: Counter<'resource'>
  readonly lastSyncAge: Gauge<'resource'>
  /** Monotonic time (ms) each resource was last heard from; set to start time until the first list. */
  readonly #lastHeard = new Map<string, { at: number }>()
  readonly #now: () => number

  constructor (registry: Registry, now: () => number = () => performance.now()) {
    const registers = [registry]
    this.#now = now
    this.watchRestarts = new Counter({
      name: 'edgemesh_kube_watch_restarts_total',
      help: 'Watches that ended (server timeout, closed connection, error, 410 Gone) and were reopened.',
      labelNames: ['resource'],
      registers
    })
    this.relists = new Counter({
      name: 'edgemesh_kube_relists_total',
      help: 'Full lists after the first one: after a watch expired (410 Gone) or a list failed.',
      labelNames: ['resource'],
      registers
    })
    const self = this
    this.lastSyncAge = new Gauge({
      name: 'edgemesh_kube_last_sync_age_seconds',
      help: 'Seconds since the informer last heard from the API server (a list, a watch event, or a watch ending at its timeout); since its start before the first list.',
      labelNames: ['resource'],
      registers,
      collect () {
        const now = self.#now()
        for (const [resource, last] of self.#lastHeard) this.set({ resource }, Math.max(0, (now - last.at) / 1000))
      }
    })
  }

  /** Creates the series of `resource` (counters at 0, age counted from now). */
  forResource (resource: string): KubeResourceMetrics {
    const labels = { resource }
    const last = { at: this.#now() }
    this.#lastHeard.set(resource, last)
    this.watchRestarts.inc(labels, 0)
    this.relists.inc(labels, 0)
    return {
      watchRestarted: () => { this.watchRestarts.inc(labels) },
      relisted: () => { this.relists.inc(labels) },
      heard: () => { last.at = this.#now() },
      remove: () => {
        if (this.#lastHeard.get(resource) !== last) return
        this.#lastHeard.delete(resource)
        this.watchRestarts.remove(labels)
        this.relists.remove(labels)
        this.lastSyncAge.remove(labels)
      }
    }
  }
}
