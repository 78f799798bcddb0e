// Bundles the CLI with esbuild into dist/edgemesh.mjs plus dist/chunks/
// (options in bundle-options.ts), with source maps and legal comments beside.
import { build } from 'esbuild'
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { BUNDLE_OPTIONS } from './bundle-options.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
rmSync(`${root}dist/chunks`, { recursive: true, force: true })
const result = await build({
  ...BUNDLE_OPTIONS,
  entryPoints: { edgemesh: `${root}src/bin/edgemesh.ts` },
  outdir: `${root}dist`,
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  legalComments: 'linked',
  metafile: true
})
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0)
console.log(`dist/edgemesh.mjs built (${(bytes / 1024).toFixed(0)} KiB with chunks and maps)`)
