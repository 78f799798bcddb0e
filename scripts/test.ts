// The one test command (`npm test`): builds/links the real control-plane
// binaries if missing, then runs every *.test.ts under test/ with node:test.
// Extra arguments are passed to `node --test` (e.g. a file glob).
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const tools = join(root, '.tools', 'bin')

if (!existsSync(join(tools, 'kube-apiserver')) || !existsSync(join(tools, 'etcd'))) {
  const r = spawnSync('bash', [join(root, 'scripts/tools/build-kube.sh')], { stdio: 'inherit' })
  if (r.status !== 0) {
    console.error('could not build the test control plane (scripts/tools/build-kube.sh); see above')
    process.exit(1)
  }
}

const args = process.argv.slice(2)
const patterns = args.filter(a => !a.startsWith('-'))
const flags = args.filter(a => a.startsWith('-'))
const r = spawnSync(process.execPath, [
  '--test',
  '--test-reporter=spec',
  '--test-timeout=300000',
  ...flags,
  ...(patterns.length > 0 ? patterns : ['test/**/*.test.ts'])
], { stdio: 'inherit', cwd: root, env: { ...process.env, EDGEMESH_TOOLS_BIN: tools } })
process.exit(r.status ?? 1)
