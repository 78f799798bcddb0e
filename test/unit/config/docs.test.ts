import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { renderConfigDocs } from '../../../src/config/docs.ts'

test('docs/config.md is generated from the schema and up to date (npm run gen)', () => {
  const committed = readFileSync(new URL('../../../docs/config.md', import.meta.url), 'utf8')
  assert.equal(committed, renderConfigDocs())
})

test('every config key is documented with a description', () => {
  const md = renderConfigDocs()
  for (const key of ['modules.edgeTunnel.maxCandidates', 'modules.edgeTunnel.relayNodes[].advertiseAddress', 'modules.edgeGateway.includeIP']) {
    assert.match(md, new RegExp('`' + key.replace(/[.[\]]/g, '\\$&') + '`'))
  }
  assert.doesNotMatch(md, /\|\s*\|\s*$/m, 'no row with an empty description')
})
