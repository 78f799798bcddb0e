// Child process of bench/servicemap/run.ts: builds the agent's data layer
// (lean kube client → informers → service map, wired as src/app/agent.ts
// wires it) against the bench API server and reports, as JSON lines on
// stdout: time to ready, RSS, and for each endpoint change the delay from the
// informer delivering its watch event to the service map publishing it.
import { KubeClient, KubeInformer, resolveKubeConnection, RESOURCES } from '../../src/kube/index.ts'
import type { Service } from '../../src/kube/index.ts'
import { EndpointSliceSource } from '../../src/kube/endpoint-slice-source.ts'
import { ServiceMap, compactService, compactSlice } from '../../src/servicemap/index.ts'
import type { CompactService } from '../../src/servicemap/index.ts'
import { parseConfig } from '../../src/config/load.ts'
import { noopLogger } from '../../src/observability/logger.ts'

const now = (): number => performance.timeOrigin + performance.now()
const emit = (o: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(o) + '\n') }

const { config } = parseConfig('agent', `kubeAPIConfig: {kubeConfig: ${process.env.KUBECONFIG as string}}`, { env: {} })
const client = new KubeClient(resolveKubeConnection(config.kubeAPIConfig, { env: {} }))
const services = new KubeInformer<CompactService>({ resource: RESOURCES.services, transform: raw => compactService(raw as unknown as Service) }, { client, logger: noopLogger })
const endpointSlices = new EndpointSliceSource({ client, logger: noopLogger }, { transform: compactSlice })
let lastEventAt = 0
// Registered before the service map's own handlers, so it runs first.
endpointSlices.addHandlers({ onUpdate: () => { lastEventAt = now() } })
const map = new ServiceMap({ logger: noopLogger, services, endpointSlices }, { serviceFilterMode: 'FilterIfLabelExists' })

let ready = false
map.subscribe(changes => {
  const t = now()
  if (!ready) {
    ready = true
    emit({ type: 'ready', msSinceProcessStart: t - performance.timeOrigin, services: map.snapshot().size })
    setTimeout(() => {
      // With --expose-gc (diagnosis only) report live data, not garbage.
      (globalThis as { gc?: () => void }).gc?.()
      const m = process.memoryUsage()
      emit({ type: 'rss', rssMB: m.rss / 1e6, heapMB: m.heapUsed / 1e6, heapTotalMB: m.heapTotal / 1e6, externalMB: m.external / 1e6 })
    }, Number(process.env.RSS_DELAY_MS ?? 2000))
    return
  }
  for (const c of changes) {
    if (c.type === 'upsert') emit({ type: 'change', key: c.key, publishedAt: t, eventAt: lastEventAt })
  }
})
await map.start()
process.on('SIGTERM', () => { map.stop().then(() => process.exit(0), () => process.exit(1)) })
