/** cnitool (built from the CNI project's Go module by scripts/tools/build-cnitool.sh) and a command runner for the CNI e2e tests. */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))
export const cnitool = join(process.env.EDGEMESH_TOOLS_BIN ?? join(root, '.tools/bin'), 'cnitool')
/** Why a test that drives cnitool on namespaces cannot run here, or false. */
export const cnitoolSkip: string | false = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : existsSync(cnitool) ? false : 'cnitool not built (bash scripts/tools/build-cnitool.sh)'

export async function run (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 30_000): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise(resolve => {
    execFile(cmd, args, { env, timeout: timeoutMs }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }))
  })
}
