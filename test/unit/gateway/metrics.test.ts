import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Registry } from 'prom-client'
import { GatewayMetrics } from '../../../src/gateway/metrics.ts'

/** The value of one exposition line, by its exact name and labels. */
function value (text: string, series: string): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

test('answers are exported by route and status class, with their latency', async () => {
  const registry = new Registry()
  const m = new GatewayMetrics(registry)
  m.answered('default/web#0', 200, 0.0004)
  m.answered('default/web#0', 204, 0.003)
  m.answered('default/web#0', 503, 2)
  m.answered('none', 404)
  m.answered('default/db#tcp', 'tcp')
  m.fastPath('forwarded')
  m.fastPath('forwarded')
  m.fastPath('handed_over')
  const text = await registry.metrics()
  assert.equal(value(text, 'edgemesh_gateway_requests_total{route="default/web#0",code="2xx"}'), 2)
  assert.equal(value(text, 'edgemesh_gateway_requests_total{route="default/web#0",code="5xx"}'), 1)
  assert.equal(value(text, 'edgemesh_gateway_requests_total{route="none",code="4xx"}'), 1)
  assert.equal(value(text, 'edgemesh_gateway_requests_total{route="default/db#tcp",code="tcp"}'), 1)
  assert.equal(value(text, 'edgemesh_gateway_requests_total{route="default/web#0",code="4xx"}'), undefined, 'no series for a class never answered')
  // Buckets are cumulative: 0.4 ms in the first, 3 ms by the third, 2 s by 2.5.
  assert.equal(value(text, 'edgemesh_gateway_request_duration_seconds_bucket{le="0.001",route="default/web#0"}'), 1)
  assert.equal(value(text, 'edgemesh_gateway_request_duration_seconds_bucket{le="0.005",route="default/web#0"}'), 2)
  assert.equal(value(text, 'edgemesh_gateway_request_duration_seconds_bucket{le="1",route="default/web#0"}'), 2)
  assert.equal(value(text, 'edgemesh_gateway_request_duration_seconds_bucket{le="+Inf",route="default/web#0"}'), 3)
  assert.equal(value(text, 'edgemesh_gateway_request_duration_seconds_count{route="default/web#0"}'), 3)
  assert.ok(Math.abs((value(text, 'edgemesh_gateway_request_duration_seconds_sum{route="default/web#0"}') ?? 0) - 2.0034) < 1e-9)
  assert.doesNotMatch(text, /request_duration_seconds_count\{route="(none|default\/db#tcp)"\}/, 'untimed answers have no latency series')
  assert.equal(value(text, 'edgemesh_gateway_http1_fast_path_total{outcome="forwarded"}'), 2)
  assert.equal(value(text, 'edgemesh_gateway_http1_fast_path_total{outcome="handed_over"}'), 1)
})

test('a second scrape adds only what came since the first', async () => {
  const registry = new Registry()
  const m = new GatewayMetrics(registry)
  m.answered('r', 200, 0.01)
  m.fastPath('forwarded')
  await registry.metrics()
  const idle = await registry.metrics()
  assert.equal(value(idle, 'edgemesh_gateway_requests_total{route="r",code="2xx"}'), 1)
  m.answered('r', 200, 0.01)
  m.answered('r', 301)
  m.fastPath('forwarded')
  const text = await registry.metrics()
  assert.equal(value(text, 'edgemesh_gateway_requests_total{route="r",code="2xx"}'), 2)
  assert.equal(value(text, 'edgemesh_gateway_requests_total{route="r",code="3xx"}'), 1)
  assert.equal(value(text, 'edgemesh_gateway_request_duration_seconds_count{route="r"}'), 2)
  assert.equal(value(text, 'edgemesh_gateway_http1_fast_path_total{outcome="forwarded"}'), 2)
})
