// Benches measure what production runs: an esbuild bundle, not TypeScript
// loaded through type stripping (whose compiler alone adds ~50 MB RSS).
import { build } from 'esbuild'
import { mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BUNDLE_OPTIONS } from '../scripts/bundle-options.ts'

const root = new URL('..', import.meta.url).pathname

/**
 * Bundles `entry` (a .ts file URL or path) into a temp .mjs and returns its
 * path. Beside it, a link to the repository's node_modules lets the bundle
 * load what the image ships unbundled (sodium-native): without it the agent
 * falls back to WebAssembly ciphers the image never runs. `native: false`
 * leaves the link out to measure that fallback.
 */
export async function bundleForBench (entry: string, { native = true }: { native?: boolean } = {}): Promise<string> {
  const outdir = mkdtempSync(join(tmpdir(), 'edgemesh-bench-'))
  const outfile = join(outdir, 'entry.mjs')
  // The options of the production bundle (scripts/build.ts).
  await build({ ...BUNDLE_OPTIONS, entryPoints: { entry }, outdir })
  if (native) symlinkSync(join(root, 'node_modules'), join(outdir, 'node_modules'))
  return outfile
}
