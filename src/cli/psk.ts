import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { derivePnetKey, generatePsk } from '../mesh/psk.ts'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './io.ts'
import type { CommandIO } from './io.ts'

const HELP = `Usage: edgemesh psk <generate|derive FILE>

  generate      print a new random PSK (32 bytes, base64) for agent.psk
  derive FILE   print the libp2p private-network key derived from a PSK file,
                exactly as EdgeMesh agents derive it (hex)
`

export async function runPsk (argv: string[], io: CommandIO): Promise<number> {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, strict: false, options: { help: { type: 'boolean', short: 'h' } } })
  const [sub, file] = positionals
  if (values.help === true || sub === undefined) {
    io.stdout.write(HELP)
    return values.help === true ? EXIT_OK : EXIT_USAGE
  }
  if (sub === 'generate') {
    io.stdout.write(generatePsk() + '\n')
    return EXIT_OK
  }
  if (sub === 'derive' && file !== undefined) {
    let bytes: Buffer
    try {
      bytes = await readFile(file)
    } catch (err) {
      io.stderr.write(`edgemesh psk: cannot read PSK file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`)
      return EXIT_FAILURE
    }
    // The agent refuses an empty PSK file; deriving a key from one would only mislead.
    if (bytes.length === 0) {
      io.stderr.write(`edgemesh psk: PSK file ${file} is empty (generate one with \`edgemesh psk generate\`)\n`)
      return EXIT_FAILURE
    }
    io.stdout.write(derivePnetKey(bytes).toString('hex') + '\n')
    return EXIT_OK
  }
  io.stderr.write(`edgemesh psk: unknown arguments: ${positionals.join(' ')}\n\n${HELP}`)
  return EXIT_USAGE
}
