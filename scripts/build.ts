// Bundles the CLI into one ES module (dist/edgemesh.mjs) with esbuild:
// tree-shaken, so the agent loads only what it uses (RSS budget), and
// runnable by a plain `node` without type stripping.
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const result = await build({
  entryPoints: [`${root}src/bin/edgemesh.ts`],
  outfile: `${root}dist/edgemesh.mjs`,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  sourcemap: 'linked',
  legalComments: 'linked',
  // Pretty logs are for terminals only; containers log JSON and never load it.
  external: ['pino-pretty'],
  // Bundled CommonJS dependencies call require(); give them one.
  banner: { js: "import { createRequire as __edgemeshCreateRequire } from 'node:module'; const require = __edgemeshCreateRequire(import.meta.url);" },
  metafile: true,
  logLevel: 'warning'
})
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0)
console.log(`dist/edgemesh.mjs built (${(bytes / 1024).toFixed(0)} KiB with map)`)
