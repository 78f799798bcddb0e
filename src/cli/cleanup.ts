import { parseArgs } from 'node:util'
import { loadConfigFile } from '../config/load.ts'
import { IpHostNet } from '../net/index.ts'
import type { CommandRunner as HostRunner } from '../net/index.ts'
import { InterceptionError, IptablesInterceptor, IPTABLES_CHAIN, nftUnavailable, runNft, renderCleanup, TABLE } from '../proxy/index.ts'
import type { CommandRunner, NftRunner } from '../proxy/index.ts'
import { noopLogger } from '../observability/logger.ts'
import { CNI_IPTABLES_CHAIN, HostRules } from '../cni/host-rules.ts'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './io.ts'
import type { CommandIO } from './io.ts'

const HELP = `Usage: edgemesh cleanup [--config-file FILE]

Removes what the agent installed on this node: the nftables table "ip ${TABLE}"
(ClusterIP interception), the iptables chain nat/${IPTABLES_CHAIN} where the
iptables fallback was used, the edge CNI's chain nat/${CNI_IPTABLES_CHAIN}, and the
bridge device (commonConfig.bridgeDeviceName, default edgemesh0, named by the config
file when given). Stop the agent first. Needs root (CAP_NET_ADMIN).
`

/** Command runners, injected for tests. */
export interface CleanupDeps {
  nft?: NftRunner
  iptables?: CommandRunner
  ip?: HostRunner
}

/** `edgemesh cleanup`: the agent never removes these on a normal stop, so kernel-path services survive restarts. */
export async function runCleanup (argv: string[], io: CommandIO, deps: CleanupDeps = {}): Promise<number> {
  const nft = deps.nft ?? runNft
  let values: { 'config-file'?: string, help?: boolean }
  try {
    values = parseArgs({ args: argv, options: { 'config-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (err) {
    io.stderr.write(`edgemesh cleanup: ${(err as Error).message}\n\n${HELP}`)
    return EXIT_USAGE
  }
  if (values.help === true) { io.stdout.write(HELP); return EXIT_OK }
  let device = 'edgemesh0'
  if (values['config-file'] !== undefined) {
    try {
      device = (await loadConfigFile('agent', values['config-file'])).config.commonConfig.bridgeDeviceName
    } catch (err) {
      io.stderr.write(`edgemesh cleanup: ${(err as Error).message}\n`)
      return EXIT_USAGE
    }
  }
  let failed = false
  let removed = 0
  try {
    // Look first: the cleanup transaction succeeds whether or not the table was there.
    const present = await nft(['list', 'table', 'ip', TABLE]).then(() => true, (err: unknown) => {
      if (err instanceof InterceptionError && /No such file or directory/.test(err.stderr)) return false
      throw err
    })
    if (present) {
      await nft(['-f', '-'], renderCleanup().join('\n') + '\n')
      io.stdout.write(`removed nftables table ip ${TABLE}\n`)
      removed++
    } else {
      io.stdout.write(`no nftables table ip ${TABLE}: nothing to remove\n`)
    }
  } catch (err) {
    if (nftUnavailable(err)) {
      io.stdout.write('nftables is not available here: no table to remove\n')
    } else {
      failed = true
      io.stderr.write(`edgemesh cleanup: nftables table ip ${TABLE} not removed: ${(err as Error).message}\n`)
    }
  }
  // The iptables fallback's chain, where an agent used it, and the edge CNI's (pod source addresses kept,
  // pods masqueraded to outside the mesh).
  const chains = [
    { chain: IPTABLES_CHAIN, rules: new IptablesInterceptor({ logger: noopLogger, run: deps.iptables }) },
    { chain: CNI_IPTABLES_CHAIN, rules: new HostRules({ run: deps.iptables }) }
  ]
  for (const { chain, rules } of chains) {
    if (!await rules.installed()) {
      io.stdout.write(`no iptables chain nat/${chain}: nothing to remove\n`)
      continue
    }
    try {
      await rules.remove()
      io.stdout.write(`removed iptables chain nat/${chain}\n`)
      removed++
    } catch (err) {
      failed = true
      io.stderr.write(`edgemesh cleanup: iptables chain nat/${chain} not removed: ${(err as Error).message}\n`)
    }
  }
  const host = new IpHostNet(deps.ip)
  try {
    if (await host.link(device) === undefined) {
      io.stdout.write(`no interface ${device}: nothing to remove\n`)
    } else {
      await host.deleteLink(device)
      io.stdout.write(`removed interface ${device}\n`)
      removed++
    }
  } catch (err) {
    failed = true
    io.stderr.write(`edgemesh cleanup: interface ${device} not removed: ${(err as Error).message}\n`)
  }
  if (!failed && removed === 0) io.stdout.write('nothing to remove: EdgeMesh left nothing on this node\n')
  return failed ? EXIT_FAILURE : EXIT_OK
}
