/**
 * Pure conversions: Kubernetes objects → the compact objects informers store
 * and the typed model (ServiceInfo, Endpoint).
 */
import type { EndpointSlice, KubeObject, Service } from '../kube/types.ts'
import type { Endpoint, EndpointPort, Protocol, ServiceInfo, ServicePort } from './types.ts'
import { byCodeUnits } from '../order.ts'

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
/** Kubernetes' default ClientIP affinity timeout (3 h). */
export const DEFAULT_AFFINITY_TIMEOUT_S = 10_800

/**
 * What the Service informer stores: identity plus the built model. Building at
 * transform time means the raw object is dropped at once and the service map
 * shares `info` instead of holding a second copy (10k services fit the
 * 120 MB budget this way).
 */
export interface CompactService extends KubeObject {
  info: ServiceInfo
}

/** What the EndpointSlice informer stores: identity, owning service, model endpoints. */
export interface CompactSlice extends KubeObject {
  serviceKey: string | undefined
  endpoints: readonly Endpoint[]
}

function identity (o: KubeObject): KubeObject['metadata'] {
  return {
    name: o.metadata.name,
    namespace: o.metadata.namespace ?? 'default',
    ...(o.metadata.resourceVersion !== undefined ? { resourceVersion: o.metadata.resourceVersion } : {})
  }
}

export function compactService (s: Service): CompactService {
  return { metadata: identity(s), info: buildServiceInfo(s) }
}

export function compactSlice (s: EndpointSlice): CompactSlice {
  return { metadata: identity(s), serviceKey: sliceServiceKey(s), endpoints: buildEndpoints([s]) }
}

/** Endpoints of one service from its slices; one slice's array is shared, not copied. */
export function mergeEndpoints (slices: Iterable<CompactSlice>): readonly Endpoint[] {
  const all = [...slices]
  if (all.length === 0) return []
  if (all.length === 1) return (all[0] as CompactSlice).endpoints
  const out: Endpoint[] = []
  const seen = new Set<string>()
  for (const slice of all.sort((a, b) => byCodeUnits(a.metadata.name, b.metadata.name))) {
    for (const e of slice.endpoints) {
      const key = `${e.ip}|${e.ports.map(p => `${p.name}/${p.protocol}/${p.port}`).join(',')}`
      if (seen.has(key)) continue
      seen.add(key)
      out.push(e)
    }
  }
  return out
}

/** `namespace/name` of the Service an EndpointSlice belongs to, if labelled. */
export function sliceServiceKey (s: EndpointSlice): string | undefined {
  const name = s.metadata.labels?.[SERVICE_NAME_LABEL]
  return name === undefined ? undefined : `${s.metadata.namespace ?? 'default'}/${name}`
}

const protocol = (p: string | undefined): Protocol => p === 'UDP' || p === 'SCTP' ? p : 'TCP'
// Shared empties: most services have no labels, external or LB IPs, and at
// 10k services one array or object each adds up.
const NO_IPS: readonly string[] = Object.freeze([])
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({})

const nonEmpty = (ips: Array<string | undefined> | undefined): readonly string[] => {
  const kept = (ips ?? []).filter((ip): ip is string => ip !== undefined && ip !== '' && ip !== 'None')
  return kept.length === 0 ? NO_IPS : kept
}

export function buildServiceInfo (s: Service): ServiceInfo {
  const spec = s.spec ?? {}
  const type = spec.type ?? 'ClusterIP'
  const headless = spec.clusterIP === 'None'
  const clusterIPs = type === 'ExternalName' || headless
    ? NO_IPS
    : nonEmpty(spec.clusterIPs !== undefined && spec.clusterIPs.length > 0 ? spec.clusterIPs : [spec.clusterIP])
  const ports: ServicePort[] = (spec.ports ?? []).map(p => ({
    name: p.name ?? '',
    protocol: protocol(p.protocol),
    port: p.port,
    ...(p.targetPort !== undefined ? { targetPort: p.targetPort } : {}),
    ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
    ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {})
  }))
  return {
    namespace: s.metadata.namespace ?? 'default',
    name: s.metadata.name,
    type,
    clusterIPs,
    headless,
    ...(type === 'ExternalName' && spec.externalName !== undefined ? { externalName: spec.externalName } : {}),
    externalIPs: nonEmpty(spec.externalIPs),
    loadBalancerIPs: nonEmpty(s.status?.loadBalancer?.ingress?.map(i => i.ip)),
    ports,
    sessionAffinity: spec.sessionAffinity === 'ClientIP' ? 'ClientIP' : 'None',
    affinityTimeoutSeconds: spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_S,
    labels: s.metadata.labels !== undefined && Object.keys(s.metadata.labels).length > 0 ? s.metadata.labels : NO_LABELS
  }
}

/**
 * Endpoints of one Service from all its slices: one Endpoint per address,
 * FQDN slices skipped, duplicates (same address and ports) merged. A missing
 * `ready` condition means ready, as the EndpointSlice API defines.
 */
export function buildEndpoints (slices: Iterable<EndpointSlice>): Endpoint[] {
  const out: Endpoint[] = []
  const seen = new Set<string>()
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue
    const ports: EndpointPort[] = (slice.ports ?? [])
      .filter(p => p.port !== undefined)
      .map(p => ({ name: p.name ?? '', port: p.port as number, protocol: protocol(p.protocol), ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}) }))
    const portsKey = ports.map(p => `${p.name}/${p.protocol}/${p.port}`).join(',')
    for (const e of slice.endpoints ?? []) {
      const ready = e.conditions?.ready ?? true
      const serving = e.conditions?.serving ?? ready
      const terminating = e.conditions?.terminating ?? false
      for (const ip of e.addresses) {
        const key = `${ip}|${portsKey}`
        if (seen.has(key)) continue
        seen.add(key)
        out.push({
          ip,
          ready,
          serving,
          terminating,
          ...(e.nodeName !== undefined ? { nodeName: e.nodeName } : {}),
          ...(e.hostname !== undefined ? { hostname: e.hostname } : {}),
          ...(e.targetRef?.kind === 'Pod' && e.targetRef.name !== undefined ? { podName: e.targetRef.name } : {}),
          ...(e.zone !== undefined ? { zone: e.zone } : {}),
          ports
        })
      }
    }
  }
  return out
}
