// The composition root hands the config's settings to the modules it builds.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Registry } from 'prom-client'
import { parseConfig } from '../../../src/config/load.ts'
import { createProxy } from '../../../src/app/agent.ts'
import type { ServiceMap } from '../../../src/servicemap/index.ts'
import type { Informer, KubeObject } from '../../../src/kube/index.ts'
import { BufferReclaimer } from '../../../src/net/index.ts'
import { noopLogger } from '../../../src/observability/logger.ts'

test('edgeProxy.loadBalancer.consistentHash reaches the load balancer the proxy picks with', () => {
  const { config } = parseConfig('agent', JSON.stringify({
    modules: { edgeProxy: { enable: true, loadBalancer: { consistentHash: { partitionCount: 7919, replicationFactor: 3, load: 1.5 } } } }
  }), { env: {}, checkFiles: false })
  const rules = { addHandlers: () => {} } as unknown as Informer<KubeObject>
  const metrics = new Registry()
  const { proxy } = createProxy(config, { nodeName: 'n1', namespace: 'kubeedge', mode: 'ManualMode' }, {
    logger: noopLogger,
    env: {},
    metrics,
    serviceMap: {} as ServiceMap,
    destinationRules: rules,
    peers: undefined,
    copied: new BufferReclaimer({ metrics })
  })
  assert.deepEqual({ ...proxy.loadBalancer.ring }, { partitionCount: 7919, replicationFactor: 3, load: 1.5 })
})
