// The one test command (`npm test`). With no arguments: installs missing
// Debian packages (as root), builds/links the real control plane, Helm and the Go interop peer if missing,
// type-checks, lints, then runs every test/**/*.test.ts with node:test.
// Arguments are passed to `node --test` (file globs, --test-name-pattern=...).
import { spawnSync } from 'node:child_process'
import type { SpawnSyncOptions } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const tools = join(root, '.tools', 'bin')
const bin = join(root, 'node_modules', '.bin')
const opts: SpawnSyncOptions = { stdio: 'inherit', cwd: root }

function step (what: string, cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, opts)
  if (r.status !== 0) {
    console.error(`\n${what} failed (exit ${String(r.status ?? r.signal)})`)
    process.exit(1)
  }
}

const args = process.argv.slice(2)
const full = args.length === 0

step('installing system packages', 'bash', [join(root, 'scripts/tools/system-deps.sh')])
if (!existsSync(join(tools, 'kube-apiserver')) || !existsSync(join(tools, 'etcd'))) {
  step('building the test control plane (scripts/tools/build-kube.sh)', 'bash', [join(root, 'scripts/tools/build-kube.sh')])
}
if (!existsSync(join(tools, 'helm'))) {
  step('building helm (scripts/tools/build-helm.sh)', 'bash', [join(root, 'scripts/tools/build-helm.sh')])
}
if (!existsSync(join(tools, 'cnitool'))) {
  step('building cnitool (scripts/tools/build-cnitool.sh)', 'bash', [join(root, 'scripts/tools/build-cnitool.sh')])
}
// Cached by the hash of its sources, so this is quick unless the peer changed.
step('building the Go interop peer (scripts/tools/build-go-peer.sh)', 'bash', [join(root, 'scripts/tools/build-go-peer.sh')])
if (full) {
  step('type check', join(bin, 'tsc'), ['-p', 'tsconfig.json'])
  step('lint', join(bin, 'eslint'), ['.'])
}

const patterns = args.filter(a => !a.startsWith('-'))
const flags = args.filter(a => a.startsWith('-'))
const r = spawnSync(process.execPath, [
  '--test',
  '--test-reporter=spec',
  '--test-timeout=300000',
  ...flags,
  ...(patterns.length > 0 ? patterns : ['test/**/*.test.ts'])
], { ...opts, env: { ...process.env, EDGEMESH_TOOLS_BIN: tools } })
process.exit(r.status ?? 1)
