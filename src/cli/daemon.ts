import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import { loadConfigFile, parseConfig } from '../config/load.ts'
import { ConfigFileError, ConfigInvalidError } from '../config/errors.ts'
import { agentIdentity, gatewayIdentity } from '../config/node-identity.ts'
import type { AgentConfig, ConfigKind, GatewayConfig } from '../config/schema.ts'
import { MissingEnvError } from '../errors.ts'
import { KubeConfigError } from '../kube/errors.ts'
import { createLogger } from '../observability/logger.ts'
import type { Logger } from '../observability/logger.ts'
import type { Component } from '../lifecycle/component.ts'
import { createAgent } from '../app/agent.ts'
import { versionString } from './version.ts'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './io.ts'
import type { CommandIO, RunningSettings } from './io.ts'

/** How long stop() may drain before handles are released by force. */
const DRAIN_DEADLINE_MS = 3_500

const DEFAULT_CONFIG_FILE: Record<ConfigKind, string> = {
  agent: '/etc/edgemesh/config/edgemesh-agent.yaml',
  gateway: '/etc/edgemesh/config/edgemesh-gateway.yaml'
}

const MIN_CONFIG: Record<ConfigKind, object> = {
  agent: {
    apiVersion: 'agent.edgemesh.config.kubeedge.io/v1alpha1',
    kind: 'EdgeMeshAgent',
    modules: {
      edgeProxy: { enable: true },
      edgeTunnel: { enable: true, relayNodes: [{ nodeName: '<your relay node name>', advertiseAddress: ['<your relay node ip>'] }] }
    }
  },
  gateway: {
    apiVersion: 'gateway.edgemesh.config.kubeedge.io/v1alpha1',
    kind: 'EdgeMeshGateway',
    modules: {
      edgeGateway: { enable: true },
      edgeTunnel: { enable: true, relayNodes: [{ nodeName: '<your relay node name>', advertiseAddress: ['<your relay node ip>'] }] }
    }
  }
}

function help (kind: ConfigKind): string {
  const what = kind === 'agent'
    ? 'Run the node agent: DNS, ClusterIP proxy, tunnel. Needs NODE_NAME and NAMESPACE.'
    : 'Run the ingress gateway. Needs NODE_NAME (identity <node>-gateway).'
  return `Usage: edgemesh ${kind} [options]

${what}

Options:
  --config-file PATH   config file (default ${DEFAULT_CONFIG_FILE[kind]})
  --defaultconfig      print the full default config and exit
  --minconfig          print a minimal config and exit
  --version            print the version and exit
  -h, --help           show this help

Exit codes: 0 stopped cleanly, 1 failed at run time, 2 bad config, flags or environment.
`
}

/** `edgemesh agent` and `edgemesh gateway`: load config, build, run until signalled. */
export async function runDaemon (kind: ConfigKind, argv: string[], io: CommandIO): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        'config-file': { type: 'string' },
        defaultconfig: { type: 'boolean' },
        minconfig: { type: 'boolean' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    }).values
  } catch (err) {
    io.stderr.write(`edgemesh ${kind}: ${(err as Error).message}\n\n${help(kind)}`)
    return EXIT_USAGE
  }
  if (values.help === true) { io.stdout.write(help(kind)); return EXIT_OK }
  if (values.version === true) { io.stdout.write(versionString() + '\n'); return EXIT_OK }
  if (values.defaultconfig === true) {
    const { config } = parseConfig(kind, '', { env: io.env, file: DEFAULT_CONFIG_FILE[kind] })
    io.stdout.write(stringify(config))
    return EXIT_OK
  }
  if (values.minconfig === true) { io.stdout.write(stringify(MIN_CONFIG[kind])); return EXIT_OK }

  const file = values['config-file'] ?? DEFAULT_CONFIG_FILE[kind]
  let config: AgentConfig | GatewayConfig
  let warnings: string[]
  try {
    ({ config, warnings } = await loadConfigFile(kind, file, { env: io.env }))
  } catch (err) {
    if (err instanceof ConfigInvalidError || err instanceof ConfigFileError) {
      io.stderr.write(`edgemesh ${kind}: ${err.message}\n`)
      return EXIT_USAGE
    }
    throw err
  }

  const level = kind === 'agent' ? (config as AgentConfig).commonConfig.logLevel : (config as GatewayConfig).logLevel
  const log = await createLogger({ level, destination: io.stderr })
  for (const w of warnings) log.warn('config: ' + w, { file })

  let app: Component
  try {
    if (kind === 'agent') {
      const c = config as AgentConfig
      app = createAgent(c, agentIdentity(c.kubeAPIConfig, io.env), { logger: log, env: io.env, configFile: file })
    } else {
      const c = config as GatewayConfig
      // Loaded only here: agents do not carry the gateway's code.
      const { createGateway } = await import('../app/gateway.ts')
      app = createGateway(c, gatewayIdentity(c.kubeAPIConfig, io.env), { logger: log, env: io.env })
    }
  } catch (err) {
    // Building reads only settings (env, kubeconfig); a failure here is a setup problem.
    if (err instanceof MissingEnvError || err instanceof KubeConfigError) {
      log.error(err.message, { code: err.code })
      return EXIT_USAGE
    }
    throw err
  }
  const releaseStartupPages = kind === 'agent' && (config as AgentConfig).commonConfig.releaseStartupPages
  return await runUntilSignalled(app, log, io, { releaseStartupPages })
}

async function runUntilSignalled (app: Component, log: Logger, io: CommandIO, settings: RunningSettings): Promise<number> {
  const t0 = performance.now()
  try {
    await app.start()
  } catch (err) {
    log.error('failed to start', { err })
    return EXIT_FAILURE
  }
  log.info('running', { startupMs: Math.round(performance.now() - t0) })
  io.onRunning?.(log, settings)
  if (!io.shutdown.requested.aborted) {
    await new Promise<void>(resolve => io.shutdown.requested.addEventListener('abort', () => resolve(), { once: true }))
  }
  log.info('stopping', { drainDeadlineMs: DRAIN_DEADLINE_MS })
  const deadline = AbortSignal.any([io.shutdown.force, AbortSignal.timeout(DRAIN_DEADLINE_MS)])
  await app.stop({ signal: deadline })
  log.info('stopped')
  return EXIT_OK
}
