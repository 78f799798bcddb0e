/**
 * Service map metrics on an injected prom-client Registry (names
 * `edgemesh_servicemap_*`). Sizes and state are read from the map at scrape
 * time through `view`; only published changes are counted as they happen.
 */
import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import type { ServiceMapSource } from './service-map.ts'

const SOURCES: readonly ServiceMapSource[] = ['live', 'persisted', 'none']

export class ServiceMapMetrics {
  readonly changes: Counter<'type'>
  /** Set by the service map: what the gauges report at scrape time. */
  view: () => { services: number, source: ServiceMapSource } = () => ({ services: 0, source: 'none' })
  /** Monotonic time (ms) of the last published batch; of construction before the first. */
  #lastChange: number
  readonly #now: () => number

  constructor (registry: Registry, now: () => number = () => performance.now()) {
    const registers = [registry]
    this.#now = now
    this.#lastChange = now()
    const self = this
    // eslint-disable-next-line no-new -- registered on the registry; read through collect()
    new Gauge({
      name: 'edgemesh_servicemap_services',
      help: 'Services in the map (every service, before any service-proxy-name filtering).',
      registers,
      collect () { this.set(self.view().services) }
    })
    // eslint-disable-next-line no-new -- as above
    new Gauge({
      name: 'edgemesh_servicemap_synced',
      help: '1 once the map serves a complete view (live from the API server, or persisted state), else 0.',
      registers,
      collect () { this.set(self.view().source === 'none' ? 0 : 1) }
    })
    // eslint-disable-next-line no-new -- as above
    new Gauge({
      name: 'edgemesh_servicemap_source',
      help: 'Where the served view comes from: 1 for the current source (live, persisted, none), 0 for the others.',
      labelNames: ['source'],
      registers,
      collect () {
        const current = self.view().source
        for (const source of SOURCES) this.set({ source }, source === current ? 1 : 0)
      }
    })
    // eslint-disable-next-line no-new -- as above
    new Gauge({
      name: 'edgemesh_servicemap_last_change_age_seconds',
      help: 'Seconds since the map last published changes to its subscribers; since the map was created before the first.',
      registers,
      collect () { this.set(Math.max(0, (self.#now() - self.#lastChange) / 1000)) }
    })
    this.changes = new Counter({
      name: 'edgemesh_servicemap_changes_total',
      help: 'Service changes published to subscribers (DNS, proxy), by type (upsert or delete).',
      labelNames: ['type'],
      registers
    })
    for (const type of ['upsert', 'delete']) this.changes.inc({ type }, 0)
  }

  /** One batch published to subscribers. */
  published (upserts: number, deletes: number): void {
    this.#lastChange = this.#now()
    if (upserts > 0) this.changes.inc({ type: 'upsert' }, upserts)
    if (deletes > 0) this.changes.inc({ type: 'delete' }, deletes)
  }
}
