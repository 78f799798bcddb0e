// A failed rule sync is retried on a timer, without waiting for the next service change.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Registry } from 'prom-client'
import { EdgeProxy } from '../../../src/proxy/proxy.ts'
import type { EdgeProxyDeps } from '../../../src/proxy/proxy.ts'
import { NoInterceptor } from '../../../src/proxy/nftables.ts'
import type { Logger, LogFields } from '../../../src/observability/logger.ts'
import type { PortRule } from '../../../src/proxy/rules.ts'
import { FakeServiceMap, endpoint, service } from '../dns/fixtures.ts'

/** Fails the first `failures` applies, like `nft` erroring. */
class FlakyInterceptor extends NoInterceptor {
  calls = 0
  readonly failures: number
  constructor (failures: number) { super(); this.failures = failures }
  override async apply (desired: ReadonlyMap<string, PortRule>): Promise<void> {
    if (++this.calls <= this.failures) throw new Error(`nft: apply ${this.calls} failed`)
    await super.apply(desired)
  }
}

function recordingLogger (): Logger & { lines: Array<[string, string, LogFields | undefined]> } {
  const lines: Array<[string, string, LogFields | undefined]> = []
  const log = {
    lines,
    debug (msg: string, f?: LogFields) { lines.push(['debug', msg, f]) },
    info (msg: string, f?: LogFields) { lines.push(['info', msg, f]) },
    warn (msg: string, f?: LogFields) { lines.push(['warn', msg, f]) },
    error (msg: string, f?: LogFields) { lines.push(['error', msg, f]) },
    forComponent () { return log },
    setLevel () {}
  }
  return log
}

/** A kernel-path service (every endpoint direct): rules only, no listener sockets. */
function web (): FakeServiceMap {
  return new FakeServiceMap([
    service('default', 'web', { clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', protocol: 'TCP', port: 80 }] },
      [endpoint('10.0.0.5', { nodeName: 'node-a', ports: [{ name: 'http', protocol: 'TCP', port: 8080 }] })])
  ])
}

function proxyWith (interceptor: FlakyInterceptor, logger: Logger, registry = new Registry()): EdgeProxy {
  return new EdgeProxy({
    logger,
    metrics: registry,
    serviceMap: web(),
    interceptor,
    dialer: {} as unknown as EdgeProxyDeps['dialer'],
    isDirect: () => true
  }, { listenIp: '127.0.0.1', serviceFilterMode: 'FilterIfLabelExists', syncRetryMinMs: 10, syncRetryMaxMs: 40 })
}

const timers = (): number => process.getActiveResourcesInfo().filter(r => r === 'Timeout').length

async function until (cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out')
    await sleep(5)
  }
}

describe('EdgeProxy rule sync retry', () => {
  test('rules end up applied after N failed applies, with no service change; one warn, one info', async () => {
    const interceptor = new FlakyInterceptor(3)
    const logger = recordingLogger()
    const registry = new Registry()
    const proxy = proxyWith(interceptor, logger, registry)
    await proxy.start()
    assert.equal(proxy.isReady(), false)
    assert.equal(interceptor.desired.size, 0)

    await until(() => interceptor.desired.size === 1)
    assert.equal(interceptor.calls, 4)
    assert.equal(proxy.isReady(), true)
    assert.equal([...interceptor.desired.values()][0]?.target.kind, 'kernel')

    const warns = logger.lines.filter(([level]) => level === 'warn')
    assert.equal(warns.length, 1)
    assert.match(String((warns[0]?.[2]?.err as Error).message), /apply 1 failed/)
    assert.deepEqual(logger.lines.filter(([level]) => level === 'info').map(([, msg, f]) => [msg, f?.failures]).filter(([m]) => m === 'proxy rules sync recovered'), [['proxy rules sync recovered', 3]])
    const errors = await registry.getSingleMetric('edgemesh_proxy_rule_sync_errors_total')?.get()
    assert.equal(errors?.values[0]?.value, 3)

    // Recovered: no retry left pending, and no further applies.
    await sleep(60)
    assert.equal(interceptor.calls, 4)
    await proxy.stop()
  })

  test('stop() clears a pending retry', async () => {
    const before = timers()
    const interceptor = new FlakyInterceptor(Infinity)
    const proxy = proxyWith(interceptor, recordingLogger())
    await proxy.start()
    await until(() => interceptor.calls >= 2)
    await proxy.stop()
    assert.equal(timers(), before)
    const calls = interceptor.calls
    await sleep(100)
    assert.equal(interceptor.calls, calls)
  })
})
