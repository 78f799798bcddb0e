/**
 * Pure conversions: Kubernetes objects → the narrowed objects informers store
 * (memory) and → the typed model (ServiceInfo, Endpoint).
 */
import type { EndpointSlice, Service } from '../kube/types.ts'
import type { Endpoint, EndpointPort, Protocol, ServiceInfo, ServicePort } from './types.ts'

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
/** Kubernetes' default ClientIP affinity timeout (3 h). */
export const DEFAULT_AFFINITY_TIMEOUT_S = 10_800

/** Keeps only what buildServiceInfo reads; informers store the result. */
export function narrowService (s: Service): Service {
  const spec = s.spec ?? {}
  const ingress = s.status?.loadBalancer?.ingress?.filter(i => i.ip !== undefined).map(i => ({ ip: i.ip as string }))
  return {
    metadata: {
      name: s.metadata.name,
      namespace: s.metadata.namespace,
      resourceVersion: s.metadata.resourceVersion,
      ...(s.metadata.labels !== undefined ? { labels: s.metadata.labels } : {})
    },
    spec: {
      type: spec.type,
      clusterIP: spec.clusterIP,
      clusterIPs: spec.clusterIPs,
      externalName: spec.externalName,
      externalIPs: spec.externalIPs,
      ports: spec.ports?.map(p => ({ name: p.name, protocol: p.protocol, port: p.port, targetPort: p.targetPort, nodePort: p.nodePort, appProtocol: p.appProtocol })),
      sessionAffinity: spec.sessionAffinity,
      sessionAffinityConfig: spec.sessionAffinityConfig
    },
    ...(ingress !== undefined && ingress.length > 0 ? { status: { loadBalancer: { ingress } } } : {})
  }
}

/** Keeps only what buildEndpoints reads and the service-name label. */
export function narrowEndpointSlice (s: EndpointSlice): EndpointSlice {
  const service = s.metadata.labels?.[SERVICE_NAME_LABEL]
  return {
    metadata: {
      name: s.metadata.name,
      namespace: s.metadata.namespace,
      resourceVersion: s.metadata.resourceVersion,
      ...(service !== undefined ? { labels: { [SERVICE_NAME_LABEL]: service } } : {})
    },
    addressType: s.addressType,
    endpoints: (s.endpoints ?? []).map(e => ({
      addresses: e.addresses,
      conditions: e.conditions,
      hostname: e.hostname,
      nodeName: e.nodeName,
      zone: e.zone,
      targetRef: e.targetRef?.kind === 'Pod' ? { kind: 'Pod', name: e.targetRef.name } : undefined
    })),
    ports: s.ports
  }
}

/** `namespace/name` of the Service an EndpointSlice belongs to, if labelled. */
export function sliceServiceKey (s: EndpointSlice): string | undefined {
  const name = s.metadata.labels?.[SERVICE_NAME_LABEL]
  return name === undefined ? undefined : `${s.metadata.namespace ?? 'default'}/${name}`
}

const protocol = (p: string | undefined): Protocol => p === 'UDP' || p === 'SCTP' ? p : 'TCP'
const nonEmpty = (ips: Array<string | undefined> | undefined): string[] =>
  (ips ?? []).filter((ip): ip is string => ip !== undefined && ip !== '' && ip !== 'None')

export function buildServiceInfo (s: Service): ServiceInfo {
  const spec = s.spec ?? {}
  const type = spec.type ?? 'ClusterIP'
  const headless = spec.clusterIP === 'None'
  const clusterIPs = type === 'ExternalName' || headless
    ? []
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
    labels: s.metadata.labels ?? {}
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
