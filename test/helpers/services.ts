/**
 * A Service and its EndpointSlice as a standalone services file holds them
 * (`kubeAPIConfig.standaloneFile`), for the lab tests and the benches.
 */
export interface ServicePort {
  name: string
  port: number
  /** The endpoints' port. @default port */
  targetPort?: number
  /** @default 'TCP' */
  protocol?: 'TCP' | 'UDP'
}

export interface SliceEndpoint {
  ip: string
  nodeName: string
  /** The Pod the endpoint names in `targetRef`, when it matters (DNS hostnames). */
  pod?: string
}

export function serviceYaml (svc: { name: string, namespace?: string, clusterIP: string, ports: ServicePort[], endpoints: SliceEndpoint[] }): string {
  const ns = svc.namespace ?? 'default'
  const servicePorts = svc.ports.map(p => `{name: ${p.name}, port: ${p.port}, protocol: ${p.protocol ?? 'TCP'}, targetPort: ${p.targetPort ?? p.port}}`)
  const slicePorts = svc.ports.map(p => `{name: ${p.name}, port: ${p.targetPort ?? p.port}, protocol: ${p.protocol ?? 'TCP'}}`)
  const endpoints = svc.endpoints.map(e => `- {addresses: [${e.ip}], conditions: {ready: true}, nodeName: ${e.nodeName}${e.pod !== undefined ? `, targetRef: {kind: Pod, name: ${e.pod}}` : ''}}`)
  return [
    'apiVersion: v1',
    'kind: Service',
    `metadata: {name: ${svc.name}, namespace: ${ns}}`,
    `spec: {clusterIP: ${svc.clusterIP}, ports: [${servicePorts.join(', ')}]}`,
    '---',
    'apiVersion: discovery.k8s.io/v1',
    'kind: EndpointSlice',
    `metadata: {name: ${svc.name}-1, namespace: ${ns}, labels: {kubernetes.io/service-name: ${svc.name}}}`,
    'addressType: IPv4',
    `ports: [${slicePorts.join(', ')}]`,
    'endpoints:',
    ...endpoints,
    '---',
    ''
  ].join('\n')
}
