// Generates docs/config.md from the config schema (the one declaration).
// `--check` fails when the committed file differs (run by the test suite).
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { renderConfigDocs } from '../src/config/docs.ts'

const target = fileURLToPath(new URL('../docs/config.md', import.meta.url))
const text = renderConfigDocs()
if (process.argv.includes('--check')) {
  let current = ''
  try { current = readFileSync(target, 'utf8') } catch {}
  if (current !== text) {
    console.error('docs/config.md is out of date: run `npm run gen`')
    process.exit(1)
  }
} else {
  writeFileSync(target, text)
  console.log('wrote docs/config.md')
}
