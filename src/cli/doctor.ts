import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { loadConfigFile, parseConfig } from '../config/load.ts'
import type { AgentConfig } from '../config/schema.ts'
import { renderChecks, runDoctor } from '../doctor/doctor.ts'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './io.ts'
import type { CommandIO } from './io.ts'

const DEFAULT_CONFIG = '/etc/edgemesh/config/edgemesh-agent.yaml'
/** Where edgecore keeps its config: keadm's place, then the one the install guide reads. */
const DEFAULT_EDGECORE = ['/etc/kubeedge/config/edgecore.yaml', '/etc/kubeedge/edgecore.yaml']

const HELP = `Usage: edgemesh doctor [--config-file FILE] [--edgecore FILE] [--json]

Checks this node: edgecore (metaServer enabled, clusterDNS = the bridge IP),
the bridge interface, DNS answering on it, the metaServer API, every relay on
its tunnel port, PSK agreement (a handshake with each relay), the
interception rules and kube-proxy coexistence. Prints each check with the
fix for failures; exits 1 when a check fails.

  --config-file FILE   the agent's config (default ${DEFAULT_CONFIG}; built-in defaults if absent)
  --edgecore FILE      edgecore's config (default: the first of ${DEFAULT_EDGECORE.join(', ')}; skipped if none)
  --json               machine-readable results
`

export async function runDoctorCommand (argv: string[], io: CommandIO): Promise<number> {
  let values: { 'config-file'?: string, edgecore?: string, json?: boolean, help?: boolean }
  try {
    values = parseArgs({ args: argv, options: { 'config-file': { type: 'string' }, edgecore: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (err) {
    io.stderr.write(`edgemesh doctor: ${(err as Error).message}\n\n${HELP}`)
    return EXIT_USAGE
  }
  if (values.help === true) { io.stdout.write(HELP); return EXIT_OK }
  const file = values['config-file'] ?? DEFAULT_CONFIG
  let config: AgentConfig
  try {
    config = values['config-file'] !== undefined || existsSync(file)
      ? (await loadConfigFile('agent', file, { env: io.env })).config
      : parseConfig('agent', '{}', { env: io.env }).config
  } catch (err) {
    io.stderr.write(`edgemesh doctor: ${(err as Error).message}\n`)
    return EXIT_USAGE
  }
  const results = await runDoctor({ config, edgecorePath: values.edgecore ?? DEFAULT_EDGECORE, nodeName: io.env.NODE_NAME ?? '', env: io.env })
  io.stdout.write(values.json === true ? JSON.stringify(results, null, 2) + '\n' : renderChecks(results))
  return results.some(r => r.status === 'fail') ? EXIT_FAILURE : EXIT_OK
}
