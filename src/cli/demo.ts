import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parseConfig } from '../config/load.ts'
import { createAgent } from '../app/agent.ts'
import { createLogger } from '../observability/logger.ts'
import type { ServiceEntry } from '../servicemap/types.ts'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './io.ts'
import type { CommandIO } from './io.ts'

/** examples/ sits two levels above src/cli and one above dist/: look upwards. */
function defaultServicesFile (): string {
  for (const up of ['../../', '../', '../../../']) {
    const candidate = fileURLToPath(new URL(`${up}examples/standalone/services.yaml`, import.meta.url))
    if (existsSync(candidate)) return candidate
  }
  return fileURLToPath(new URL('../../examples/standalone/services.yaml', import.meta.url))
}

const HELP = `Usage: edgemesh demo [--services FILE] [--once]

Runs an agent on this machine with no cluster and no root: Services and
EndpointSlices come from a YAML file (default: examples/standalone/services.yaml),
watched for changes. Prints the service map, then again on every change,
until Ctrl-C.

  --services FILE   the standalone services file
  --once            print the service map once and exit
`

/** The service map as a table: what the mesh knows and where endpoints live. */
export function renderServiceTable (entries: Iterable<ServiceEntry>): string {
  const rows = [['SERVICE', 'CLUSTER-IP', 'PORTS', 'ENDPOINTS']]
  for (const e of [...entries].sort((a, b) => `${a.service.namespace}/${a.service.name}`.localeCompare(`${b.service.namespace}/${b.service.name}`))) {
    const s = e.service
    rows.push([
      `${s.namespace}/${s.name}`,
      s.headless ? 'None (headless)' : s.externalName !== undefined ? `→ ${s.externalName}` : s.clusterIPs.join(',') || '-',
      s.ports.map(p => `${p.name !== '' ? p.name + ':' : ''}${p.port}/${p.protocol}`).join(',') || '-',
      e.endpoints.filter(ep => ep.ready).map(ep => `${ep.ip}${ep.nodeName !== undefined ? '@' + ep.nodeName : ''}`).join(' ') || '(none ready)'
    ])
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? []
  return rows.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join('  ')).join('\n') + '\n'
}

export async function runDemo (argv: string[], io: CommandIO): Promise<number> {
  let values
  try {
    values = parseArgs({ args: argv, options: { services: { type: 'string' }, once: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (err) {
    io.stderr.write(`edgemesh demo: ${(err as Error).message}\n\n${HELP}`)
    return EXIT_USAGE
  }
  if (values.help === true) { io.stdout.write(HELP); return EXIT_OK }
  const file = values.services ?? defaultServicesFile()
  const stateDir = await mkdtemp(join(tmpdir(), 'edgemesh-demo-'))
  const log = await createLogger({ level: 'warn', destination: io.stderr })
  try {
    const { config } = parseConfig('agent', JSON.stringify({
      kubeAPIConfig: { standaloneFile: file },
      commonConfig: { stateDir, statusPort: 0 },
      modules: { edgeDNS: { enable: false } }
    }), { env: io.env })
    const app = createAgent(config, { nodeName: 'demo-node', namespace: 'demo', mode: 'ManualMode' }, { logger: log, env: io.env })
    app.serviceMap.subscribe(changes => {
      if (values.once === true) return
      io.stdout.write(`\nservice map (${changes.length} change${changes.length === 1 ? '' : 's'}):\n` + renderServiceTable(app.serviceMap.snapshot().values()))
    })
    try {
      await app.start()
    } catch (err) {
      io.stderr.write(`edgemesh demo: ${(err as Error).message}\n`)
      return EXIT_FAILURE
    }
    io.stdout.write(`EdgeMesh-TS demo: ${app.serviceMap.snapshot().size} services from ${file}\n`)
    if (values.once === true) {
      io.stdout.write(renderServiceTable(app.serviceMap.snapshot().values()))
    } else {
      io.stdout.write(`edit ${file} to see changes; Ctrl-C to stop\n`)
      if (!io.shutdown.requested.aborted) {
        await new Promise<void>(resolve => io.shutdown.requested.addEventListener('abort', () => resolve(), { once: true }))
      }
    }
    await app.stop({ signal: AbortSignal.timeout(3000) })
    io.stdout.write('stopped\n')
    return EXIT_OK
  } finally {
    await rm(stateDir, { recursive: true, force: true })
  }
}
