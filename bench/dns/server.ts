// The DNS server as the bench runs it: N services svc-<i>.default (ClusterIP
// 10.96.<i/250>.<i%250+1>), forwarding to the resolv.conf it is given.
// Usage: node bench/dns/server.ts --address A --port P --services N --resolv FILE [--upstream-port P] [--sockets N]
import { parseArgs } from 'node:util'
import { Registry } from 'prom-client'
import { DnsServer } from '../../src/dns/index.ts'
import { noopLogger } from '../../src/observability/logger.ts'
import type { ServiceEntry, ServiceMapView } from '../../src/servicemap/types.ts'

const { values } = parseArgs({
  options: {
    address: { type: 'string', default: '127.0.0.2' },
    port: { type: 'string', default: '5300' },
    services: { type: 'string', default: '1000' },
    resolv: { type: 'string', default: '/etc/resolv.conf' },
    'upstream-port': { type: 'string', default: '53' },
    sockets: { type: 'string', default: '1' }
  }
})

export function benchClusterIP (i: number): string {
  return `10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`
}

const map = new Map<string, ServiceEntry>()
for (let i = 0; i < Number(values.services); i++) {
  map.set(`default/svc-${i}`, {
    service: {
      namespace: 'default',
      name: `svc-${i}`,
      type: 'ClusterIP',
      clusterIPs: [benchClusterIP(i)],
      headless: false,
      externalIPs: [],
      loadBalancerIPs: [],
      ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
      sessionAffinity: 'None',
      affinityTimeoutSeconds: 0,
      labels: {}
    },
    endpoints: []
  })
}
const view: ServiceMapView = {
  hasSynced: () => true,
  get: (k) => map.get(k),
  snapshot: () => map,
  byClusterIP: () => undefined,
  subscribe: () => () => {}
}

const server = new DnsServer({ logger: noopLogger, metrics: new Registry(), serviceMap: view }, {
  listenAddress: values.address,
  listenPort: Number(values.port),
  resolvConfPath: values.resolv,
  upstreamPort: Number(values['upstream-port']),
  udpSockets: Number(values.sockets)
})
await server.start()
process.stdout.write(`listening ${values.address}:${values.port}\n`)
const stop = (): void => { server.stop().then(() => process.exit(0), () => process.exit(1)) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
