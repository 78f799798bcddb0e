import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { renderConfigDocs } from '../../../src/config/docs.ts'
import { collectErrors, renderErrorDocs } from '../../../src/docs/errors-catalog.ts'

const read = (rel: string): string => readFileSync(new URL(`../../../${rel}`, import.meta.url), 'utf8')

test('docs/config.md is generated from the schema and up to date (npm run gen)', () => {
  assert.equal(read('docs/config.md'), renderConfigDocs())
})

test('every config key is documented with a description', () => {
  const md = renderConfigDocs()
  for (const key of ['modules.edgeTunnel.maxCandidates', 'modules.edgeTunnel.relayNodes[].advertiseAddress', 'modules.edgeGateway.includeIP']) {
    assert.match(md, new RegExp('`' + key.replace(/[.[\]]/g, '\\$&') + '`'))
  }
  assert.doesNotMatch(md, /\|\s*\|\s*$/m, 'no row with an empty description')
})

test('docs/errors.md lists every error code, each with a meaning (npm run gen)', () => {
  const errors = collectErrors(fileURLToPath(new URL('../../../src', import.meta.url)))
  assert.ok(errors.length >= 10)
  assert.equal(new Set(errors.map(e => e.code)).size, errors.length, 'codes are unique')
  for (const e of errors) assert.notEqual(e.description, '', `${e.name} (${e.code}) needs a doc comment`)
  assert.equal(read('docs/errors.md'), renderErrorDocs(errors))
})

test('the chart values.schema.json is generated from the config schema and up to date (npm run gen)', async () => {
  const { renderValuesSchema } = await import('../../../scripts/chart-schema.ts')
  assert.equal(read('deploy/helm/edgemesh/values.schema.json'), renderValuesSchema())
})

test('docs/metrics.md lists every metric, and the Grafana dashboard only uses metrics that exist', async () => {
  const { metricsCatalog, renderMetricsDocs } = await import('../../../src/docs/metrics-docs.ts')
  assert.equal(read('docs/metrics.md'), renderMetricsDocs())
  const names = new Set(metricsCatalog().map(m => m.name))
  const dashboard = JSON.parse(read('deploy/grafana/edgemesh.json')) as { panels: Array<{ targets: Array<{ expr: string }> }> }
  const used = dashboard.panels.flatMap(p => p.targets.flatMap(t => [...t.expr.matchAll(/edgemesh_[a-z_]+/g)].map(m => m[0].replace(/_(bucket|sum|count)$/, ''))))
  assert.ok(used.length > 10)
  for (const name of used) assert.ok(names.has(name), `${name} used by the dashboard is not a metric`)
})
