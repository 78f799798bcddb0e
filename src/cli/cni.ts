/**
 * `edgemesh cni`: the CNI plugin, as a container runtime calls it (CNI_*
 * variables, the network configuration on stdin, the result or error on
 * stdout). Installed as `edgemesh-cni` in the runtime's CNI_PATH.
 */
import { basename, dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { runCni } from '../cni/plugin.ts'
import { CONFLIST_NAME, installPlugin, PLUGIN_NAME } from '../cni/install.ts'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './io.ts'
import type { CommandIO } from './io.ts'

const HELP = `Usage: edgemesh cni   (called by a container runtime, as the CNI plugin edgemesh-cni)
       edgemesh cni install [options]   (puts the plugin on the host; see --help there)

Reads CNI_COMMAND (ADD, DEL, CHECK, VERSION, STATUS, GC), CNI_CONTAINERID, CNI_NETNS and
CNI_IFNAME from the environment and the network configuration from stdin:
  {"cniVersion": "1.0.0", "name": "edgemesh", "type": "edgemesh-cni", "subnet": "10.244.64.0/24",
   "bridge": "edgemesh-cni0", "mtu": 1500, "dataDir": "/var/lib/cni/networks"}
See src/cni/README.md.
`

const INSTALL_HELP = `Usage: edgemesh cni install [--host-root DIR] [--bin-dir DIR] [--conf-dir DIR] [--install-dir DIR]
                            [--subnet-file FILE] [--bridge NAME] [--data-dir DIR]

Puts the CNI plugin ${PLUGIN_NAME} on this host (the DaemonSet's init container runs it with the
host's directories under --host-root): this Node binary and the bundled app into --install-dir,
the plugin into --bin-dir, and ${CONFLIST_NAME} into --conf-dir unless another CNI is configured
there. Files already in place are left alone.

  --host-root DIR     where the host's filesystem is mounted (default /)
  --bin-dir DIR       the runtime's CNI_PATH (default /opt/cni/bin)
  --conf-dir DIR      the runtime's CNI configuration directory (default /etc/cni/net.d)
  --install-dir DIR   where Node and the app go (default /opt/edgemesh)
  --subnet-file FILE  the agent's pod block file (default /var/lib/edgemesh/cni-block.json)
  --bridge NAME       the pods' bridge (default edgemesh-cni0)
  --data-dir DIR      where the plugin keeps address leases (default /var/lib/cni/networks)
`

async function runInstall (argv: string[], io: CommandIO): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        'host-root': { type: 'string', default: '/' },
        'bin-dir': { type: 'string', default: '/opt/cni/bin' },
        'conf-dir': { type: 'string', default: '/etc/cni/net.d' },
        'install-dir': { type: 'string', default: '/opt/edgemesh' },
        'subnet-file': { type: 'string', default: '/var/lib/edgemesh/cni-block.json' },
        bridge: { type: 'string', default: 'edgemesh-cni0' },
        'data-dir': { type: 'string', default: '/var/lib/cni/networks' },
        help: { type: 'boolean', short: 'h' }
      }
    }).values
  } catch (err) {
    io.stderr.write(`edgemesh cni install: ${(err as Error).message}\n\n${INSTALL_HELP}`)
    return EXIT_USAGE
  }
  if (values.help === true) { io.stdout.write(INSTALL_HELP); return EXIT_OK }
  for (const key of ['bin-dir', 'conf-dir', 'install-dir', 'subnet-file', 'data-dir'] as const) {
    if (!values[key].startsWith('/')) { io.stderr.write(`edgemesh cni install: --${key} must be an absolute path, got "${values[key]}"\n`); return EXIT_USAGE }
    // The launcher quotes the paths in single quotes.
    if (values[key].includes("'")) { io.stderr.write(`edgemesh cni install: --${key} must not contain a single quote, got "${values[key]}"\n`); return EXIT_USAGE }
  }
  // The running app: its entry file (the bundle, /app/edgemesh.mjs in the image) and the directory around it.
  const entry = resolve(process.argv[1] ?? '')
  try {
    const report = await installPlugin({
      hostRoot: values['host-root'],
      binDir: values['bin-dir'],
      confDir: values['conf-dir'],
      installDir: values['install-dir'],
      subnetFile: values['subnet-file'],
      bridge: values.bridge,
      dataDir: values['data-dir'],
      nodeBinary: process.execPath,
      appDir: dirname(entry),
      entry: basename(entry)
    })
    for (const f of report.written) io.stdout.write(`wrote ${f}\n`)
    io.stdout.write(`${report.unchanged} files already in place\n`)
    const c = report.conflist
    io.stdout.write(typeof c === 'string' ? `${values['conf-dir']}/${CONFLIST_NAME}: ${c}\n` : `no ${CONFLIST_NAME}: ${c.skipped}\n`)
    return EXIT_OK
  } catch (err) {
    io.stderr.write(`edgemesh cni install: ${(err as Error).message}\n`)
    return EXIT_FAILURE
  }
}

export async function runCniCommand (argv: string[], io: CommandIO, stdin: AsyncIterable<Buffer | string> = process.stdin): Promise<number> {
  if (argv[0] === 'install') return await runInstall(argv.slice(1), io)
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
