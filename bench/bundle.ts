// Benches measure what production runs: an esbuild bundle, not TypeScript
// loaded through type stripping (whose compiler alone adds ~50 MB RSS).
import { build } from 'esbuild'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Bundles `entry` (a .ts file URL or path) into a temp .mjs and returns its path. */
export async function bundleForBench (entry: string): Promise<string> {
  const outdir = mkdtempSync(join(tmpdir(), 'edgemesh-bench-'))
  const outfile = join(outdir, 'entry.mjs')
  // Split like scripts/build.ts: lazily imported code stays out of the entry chunk.
  await build({
    entryPoints: { entry },
    outdir,
    outExtension: { '.js': '.mjs' },
    splitting: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    external: ['pino-pretty'],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'warning'
  })
  return outfile
}
