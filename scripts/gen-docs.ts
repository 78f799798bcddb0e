// Generates docs/config.md and the chart's values.schema.json (from the config
// schema) and docs/errors.md (from the error classes). `--check` fails when a committed file differs.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { renderConfigDocs } from '../src/config/docs.ts'
import { collectErrors, renderErrorDocs } from '../src/docs/errors-catalog.ts'
import { renderValuesSchema } from './chart-schema.ts'
import { renderMetricsDocs } from '../src/docs/metrics-docs.ts'

const docs: Array<[string, string]> = [
  ['../docs/config.md', renderConfigDocs()],
  ['../docs/errors.md', renderErrorDocs(collectErrors(fileURLToPath(new URL('../src', import.meta.url))))],
  ['../deploy/helm/edgemesh/values.schema.json', renderValuesSchema()],
  ['../docs/metrics.md', renderMetricsDocs()]
]
let stale = false
for (const [rel, text] of docs) {
  const target = fileURLToPath(new URL(rel, import.meta.url))
  if (process.argv.includes('--check')) {
    let current = ''
    try { current = readFileSync(target, 'utf8') } catch {}
    if (current !== text) { console.error(`${rel.slice(3)} is out of date: run \`npm run gen\``); stale = true }
  } else {
    writeFileSync(target, text)
    console.log(`wrote ${rel.slice(3)}`)
  }
}
process.exitCode = stale ? 1 : 0
