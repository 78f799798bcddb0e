import type { EndpointSlice, Service } from '../../../src/kube/types.ts'
import { compactService, compactSlice } from '../../../src/servicemap/build.ts'
import type { CompactService, CompactSlice } from '../../../src/servicemap/build.ts'

export function svc (name: string, spec: Service['spec'] = {}, labels?: Record<string, string>, namespace = 'default'): Service {
  return { metadata: { name, namespace, ...(labels !== undefined ? { labels } : {}) }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec } }
}

export function slice (name: string, service: string, endpoints: NonNullable<EndpointSlice['endpoints']>, ports: EndpointSlice['ports'] = [{ name: 'http', port: 8080, protocol: 'TCP' }], namespace = 'default'): EndpointSlice {
  return { metadata: { name, namespace, labels: { 'kubernetes.io/service-name': service } }, addressType: 'IPv4', endpoints, ports }
}

/** The compact forms informers store. */
export const csvc = (...args: Parameters<typeof svc>): CompactService => compactService(svc(...args))
export const cslice = (...args: Parameters<typeof slice>): CompactSlice => compactSlice(slice(...args))
