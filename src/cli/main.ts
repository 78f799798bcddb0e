import { runDaemon } from './daemon.ts'
import { runPsk } from './psk.ts'
import { runDemo } from './demo.ts'
import { runCleanup } from './cleanup.ts'
import { runCniCommand } from './cni.ts'
import { runStatus } from './status.ts'
import { runDoctorCommand } from './doctor.ts'
import { versionString } from './version.ts'
import { EXIT_OK, EXIT_USAGE } from './io.ts'
import type { CommandIO } from './io.ts'

type Command = (argv: string[], io: CommandIO) => Promise<number>

const COMMANDS: Record<string, { run: Command, summary: string }> = {
  agent: { run: (a, io) => runDaemon('agent', a, io), summary: 'run the node agent (DNS, proxy, tunnel)' },
  gateway: { run: (a, io) => runDaemon('gateway', a, io), summary: 'run the ingress gateway' },
  demo: { run: runDemo, summary: 'run a local mesh with no cluster (standalone services file)' },
  psk: { run: runPsk, summary: 'generate a PSK or derive its tunnel key' },
  doctor: { run: runDoctorCommand, summary: 'check this node: edgecore, DNS, relays, PSK, rules; says how to fix what fails' },
  status: { run: runStatus, summary: 'show what the agent on this node knows: services, rules, tunnel peers' },
  cleanup: { run: runCleanup, summary: 'remove the interception rules and the bridge device from this node' },
  cni: { run: runCniCommand, summary: 'the CNI plugin edgemesh-cni (called by the container runtime)' }
}

function help (): string {
  const width = Math.max(...Object.keys(COMMANDS).map(c => c.length))
  return `EdgeMesh-TS: edge service mesh for Kubernetes and KubeEdge.

Usage: edgemesh <command> [options]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`).join('\n')}

Run "edgemesh <command> --help" for a command's options.
`
}

/** Dispatches to a subcommand; returns the process exit code. */
export async function main (argv: string[], io: CommandIO): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(help())
    return name === undefined ? EXIT_USAGE : EXIT_OK
  }
  if (name === '--version' || name === 'version') {
    io.stdout.write(versionString() + '\n')
    return EXIT_OK
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    io.stderr.write(`edgemesh: unknown command "${name}"\n\n${help()}`)
    return EXIT_USAGE
  }
  return await command.run(rest, io)
}
