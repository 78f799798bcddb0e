import type { ServiceEntry } from './types.ts'

/** Upstream's label for "this Service is handled by another proxy". */
export const SERVICE_PROXY_NAME_LABEL = 'service.edgemesh.kubeedge.io/service-proxy-name'

export type ServiceFilterMode = 'FilterIfLabelExists' | 'FilterIfLabelDoesNotExists'

/**
 * Which services the proxy handles (upstream semantics). The service map
 * itself keeps every service, because DNS answers for all of them.
 * - FilterIfLabelExists: skip services carrying the label (default).
 * - FilterIfLabelDoesNotExists: handle only services carrying it.
 */
export function serviceProxyFilter (mode: ServiceFilterMode): (entry: ServiceEntry) => boolean {
  return mode === 'FilterIfLabelExists'
    ? entry => !(SERVICE_PROXY_NAME_LABEL in entry.service.labels)
    : entry => SERVICE_PROXY_NAME_LABEL in entry.service.labels
}
