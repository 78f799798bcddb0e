/**
 * A service map twin and the services the DNS tests share. Shapes follow
 * src/servicemap/types.ts; only what DNS reads is filled in.
 */
import type { Endpoint, ServiceChange, ServiceEntry, ServiceInfo, ServiceKey, ServiceMapView } from '../../../src/servicemap/types.ts'

export function service (namespace: string, name: string, fields: Partial<ServiceInfo> = {}, endpoints: Endpoint[] = []): ServiceEntry {
  return {
    service: {
      namespace,
      name,
      type: 'ClusterIP',
      clusterIPs: [],
      headless: false,
      externalIPs: [],
      loadBalancerIPs: [],
      ports: [],
      sessionAffinity: 'None',
      affinityTimeoutSeconds: 10800,
      labels: {},
      ...fields
    },
    endpoints
  }
}

export function endpoint (ip: string, fields: Partial<Endpoint> = {}): Endpoint {
  return { ip, ready: true, serving: true, terminating: false, ports: [], ...fields }
}

/** The cluster the DNS tests resolve against. */
export function fixtureEntries (): ServiceEntry[] {
  const http = { name: 'http', protocol: 'TCP' as const, port: 9376 }
  return [
    service('default', 'hostname-svc', { clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', protocol: 'TCP', port: 12345, targetPort: 9376 }] },
      [endpoint('10.244.1.5', { ports: [http] })]),
    service('default', 'dual', {
      clusterIPs: ['10.96.0.11', 'fd00:10:96::11'],
      ports: [{ name: 'dns', protocol: 'UDP', port: 53 }, { name: 'dns-tcp', protocol: 'TCP', port: 53 }, { name: '', protocol: 'TCP', port: 8080 }]
    }),
    service('default', 'headless', { headless: true, ports: [{ name: 'http', protocol: 'TCP', port: 80 }] }, [
      endpoint('10.244.1.10', { hostname: 'web-0', ports: [http] }),
      endpoint('10.244.2.11', { ports: [http] }),
      endpoint('10.244.3.12', { hostname: 'web-2', ready: false, ports: [http] }),
      endpoint('fd00:244::10', { hostname: 'web-0', ports: [http] })
    ]),
    service('default', 'empty-headless', { headless: true }),
    service('default', 'no-endpoints', { clusterIPs: ['10.96.0.12'], ports: [{ name: 'http', protocol: 'TCP', port: 80 }] }),
    service('default', 'external', { type: 'ExternalName', externalName: 'example.test' }),
    service('default', 'alias', { type: 'ExternalName', externalName: 'hostname-svc.default.svc.cluster.local' }),
    service('kube-system', 'kube-dns', {
      clusterIPs: ['10.96.0.53'],
      labels: { 'k8s-app': 'kube-dns' },
      ports: [{ name: 'dns', protocol: 'UDP', port: 53 }, { name: 'dns-tcp', protocol: 'TCP', port: 53 }]
    })
  ]
}

export function snapshotOf (entries: readonly ServiceEntry[]): Map<ServiceKey, ServiceEntry> {
  return new Map(entries.map(e => [`${e.service.namespace}/${e.service.name}`, e]))
}

/** ServiceMapView twin: set() replaces everything and notifies like the real map. */
export class FakeServiceMap implements ServiceMapView {
  #map: Map<ServiceKey, ServiceEntry>
  #synced: boolean
  readonly #listeners = new Set<(changes: readonly ServiceChange[]) => void>()

  constructor (entries: readonly ServiceEntry[] = fixtureEntries(), synced = true) {
    this.#map = snapshotOf(entries)
    this.#synced = synced
  }

  hasSynced (): boolean { return this.#synced }
  get (key: ServiceKey): ServiceEntry | undefined { return this.#map.get(key) }
  snapshot (): ReadonlyMap<ServiceKey, ServiceEntry> { return this.#map }
  byClusterIP (ip: string): ServiceEntry | undefined {
    return [...this.#map.values()].find(e => e.service.clusterIPs.includes(ip))
  }

  subscribe (listener: (changes: readonly ServiceChange[]) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  get listeners (): number { return this.#listeners.size }

  set (entries: readonly ServiceEntry[], synced = true): void {
    const previous = this.#map
    this.#map = snapshotOf(entries)
    this.#synced = synced
    const changes: ServiceChange[] = []
    for (const [key, entry] of this.#map) changes.push({ type: 'upsert', key, entry, previous: previous.get(key) })
    for (const [key, prev] of previous) if (!this.#map.has(key)) changes.push({ type: 'delete', key, previous: prev })
    for (const l of this.#listeners) l(changes)
  }
}
