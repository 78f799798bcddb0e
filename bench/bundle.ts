// Benches measure what production runs: an esbuild bundle, not TypeScript
// loaded through type stripping (whose compiler alone adds ~50 MB RSS).
import { build } from 'esbuild'
import { chmodSync, copyFileSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
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

const ownNodes = new Map<string, string>()

/**
 * A copy of `source` (this Node by default) in a temp directory, one per
 * `name` (a lab node), made once per bench: each agent runs it as the image
 * runs its own `node`, mapped by no other process. The kernel frees no page
 * that another process also maps, so agents sharing the bench's binary would
 * keep pages they release in production (src/bin/startup-pages.ts).
 */
export function ownNodeBinary (name = 'node', source: string = process.execPath): string {
  const known = ownNodes.get(name)
  if (known !== undefined) return known
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-node-'))
  const copy = join(dir, 'node')
  copyFileSync(source, copy)
  chmodSync(copy, 0o755)
  process.once('exit', () => { rmSync(dir, { recursive: true, force: true }) })
  ownNodes.set(name, copy)
  return copy
}
