// Child process of bench/servicemap/run.ts: builds the agent's real data layer
// (kube informers → service map) against the bench API server and reports, as
// JSON lines on stdout: time to ready, RSS, and for each endpoint change the
// delay from its watch event to the service map publishing it.
import { subscribe } from 'node:diagnostics_channel'
import { parseConfig } from '../../src/config/load.ts'
import { createAgent } from '../../src/app/agent.ts'
import { noopLogger } from '../../src/observability/logger.ts'

const now = (): number => performance.timeOrigin + performance.now()
const emit = (o: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(o) + '\n') }

const { config } = parseConfig('agent', 'modules: {edgeDNS: {enable: false}}', { env: {} })
const app = createAgent(config, { nodeName: 'bench-node', namespace: 'kubeedge', mode: 'ManualMode' }, {
  logger: noopLogger,
  env: { KUBECONFIG: process.env.KUBECONFIG }
})

let ready = false
let lastEventAt = 0
app.serviceMap.subscribe(changes => {
  const t = now()
  if (!ready) {
    ready = true
    emit({ type: 'ready', msSinceProcessStart: t - performance.timeOrigin, services: app.serviceMap.snapshot().size })
    setTimeout(() => emit({ type: 'rss', rssMB: process.memoryUsage().rss / 1e6, heapMB: process.memoryUsage().heapUsed / 1e6 }), 2000)
    return
  }
  for (const c of changes) {
    if (c.type === 'upsert') emit({ type: 'change', key: c.key, publishedAt: t, eventAt: lastEventAt })
  }
})
// The informer publishes each watch event here (free when nobody listens).
subscribe('edgemesh:kube:watch-event', () => { lastEventAt = now() })
await app.start()
process.on('SIGTERM', () => { app.stop().then(() => process.exit(0), () => process.exit(1)) })
