import type { Registry } from 'prom-client'

/**
 * Scrapes a registry as Prometheus would (text exposition) and returns each
 * sample by its series, e.g. `edgemesh_kube_relists_total{resource="services"}`.
 */
export async function scrape (registry: Registry): Promise<Map<string, number>> {
  const samples = new Map<string, number>()
  for (const line of (await registry.metrics()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    samples.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return samples
}
