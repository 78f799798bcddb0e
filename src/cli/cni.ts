/**
 * `edgemesh cni`: the CNI plugin, as a container runtime calls it (CNI_*
 * variables, the network configuration on stdin, the result or error on
 * stdout). Installed as `edgemesh-cni` in the runtime's CNI_PATH.
 */
import { runCni } from '../cni/plugin.ts'
import type { CommandIO } from './io.ts'

const HELP = `Usage: edgemesh cni   (called by a container runtime, as the CNI plugin edgemesh-cni)

Reads CNI_COMMAND (ADD, DEL, CHECK, VERSION, STATUS, GC), CNI_CONTAINERID, CNI_NETNS and
CNI_IFNAME from the environment and the network configuration from stdin:
  {"cniVersion": "1.0.0", "name": "edgemesh", "type": "edgemesh-cni", "subnet": "10.244.64.0/24",
   "bridge": "edgemesh0", "mtu": 1500, "dataDir": "/var/lib/cni/networks"}
See src/cni/README.md.
`

export async function runCniCommand (argv: string[], io: CommandIO, stdin: AsyncIterable<Buffer | string> = process.stdin): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h') || (io.env.CNI_COMMAND === undefined && argv.length === 0 && process.stdin.isTTY)) {
    io.stdout.write(HELP)
    return 0
  }
  const parts: string[] = []
  if (io.env.CNI_COMMAND !== 'VERSION') for await (const chunk of stdin) parts.push(String(chunk))
  const outcome = await runCni(io.env, parts.join(''))
  if (outcome.stdout !== '') io.stdout.write(`${outcome.stdout}\n`)
  return outcome.exitCode
}
