// `edgemesh gateway` as a user runs it, on a standalone file: the process and
// its log lines, for the integration tests of src/gateway.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import type { ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { stringify } from 'yaml'

const entry = new URL('../../src/bin/edgemesh.ts', import.meta.url).pathname

/** Polls `probe` every 50 ms until it returns something other than undefined. */
export async function until<T> (what: string, probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = performance.now() + ms
  let last: unknown
  while (performance.now() < end) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch (err) { last = err }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`${what}: not within ${ms} ms${last !== undefined ? ` (last error: ${String(last)})` : ''}`)
}

/** Starts the gateway on `world` (listeners on 127.0.0.1, no tunnel); resolves once it runs. Log lines go to `logs`. */
export async function startGateway (dir: string, world: string, statusPort: number, logs: string[]): Promise<ChildProcess> {
  const config = join(dir, 'edgemesh-gateway.yaml')
  await writeFile(config, stringify({
    kubeAPIConfig: { standaloneFile: world },
    statusPort,
    modules: { edgeGateway: { enable: true, nic: '*', includeIP: '127.0.0.1' }, edgeTunnel: { enable: false } }
  }))
  const proc = spawn(process.execPath, [entry, 'gateway', '--config-file', config], { env: { PATH: process.env.PATH, NODE_NAME: 'cloud-1' }, stdio: ['ignore', 'ignore', 'pipe'] })
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => logs.push(...d.split('\n').filter(l => l !== '')))
  await until('gateway running', async () => logs.some(l => l.includes('"msg":"running"')) || proc.exitCode !== null ? true : undefined, 15_000)
  if (proc.exitCode !== null) throw new Error(`gateway exited ${proc.exitCode}:\n${logs.join('\n')}`)
  return proc
}

/** Stops a gateway started by startGateway, if it still runs. */
export async function stopGateway (proc: ChildProcess | undefined): Promise<void> {
  if (proc === undefined || proc.exitCode !== null) return
  proc.kill('SIGTERM')
  await once(proc, 'exit')
}
