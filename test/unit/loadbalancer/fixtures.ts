import type { Endpoint, ServiceInfo } from '../../../src/servicemap/types.ts'

/** A ready endpoint serving port name `portName` on `port`. */
export function ep (ip: string, opts: { port?: number, portName?: string, ready?: boolean, nodeName?: string, podName?: string } = {}): Endpoint {
  return {
    ip,
    ready: opts.ready ?? true,
    serving: opts.ready ?? true,
    terminating: false,
    ...(opts.nodeName !== undefined ? { nodeName: opts.nodeName } : {}),
    ...(opts.podName !== undefined ? { podName: opts.podName } : {}),
    ports: [{ name: opts.portName ?? '', port: opts.port ?? 8080, protocol: 'TCP' }]
  }
}

/** `n` ready endpoints 10.0.0.1 … 10.0.0.n. */
export function eps (n: number, opts: { port?: number, portName?: string } = {}): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ep(`10.0.0.${i + 1}`, opts))
}

/** Deterministic PRNG in [0, 1) (mulberry32). */
export function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A fake clock in milliseconds. */
export function fakeClock (start = 0): { now: () => number, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms: number) => { t += ms } }
}

/** Counts picks per endpoint IP. */
export function tally (picks: Iterable<Endpoint | undefined>): Map<string, number> {
  const m = new Map<string, number>()
  for (const p of picks) {
    const k = p?.ip ?? 'none'
    m.set(k, (m.get(k) ?? 0) + 1)
  }
  return m
}

/** Service default/web with one TCP port 80 (`http`, target 8080). */
export function serviceInfo (over: Partial<ServiceInfo> = {}): ServiceInfo {
  return {
    namespace: 'default',
    name: 'web',
    type: 'ClusterIP',
    clusterIPs: ['10.96.0.10'],
    headless: false,
    externalIPs: [],
    loadBalancerIPs: [],
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
    sessionAffinity: 'None',
    affinityTimeoutSeconds: 10800,
    labels: {},
    ...over
  }
}
