#!/usr/bin/env node
// Thin entry point: wire process signals and streams, run the CLI, exit.
import { main } from '../cli/main.ts'

const requested = new AbortController()
const force = new AbortController()
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (requested.signal.aborted) force.abort()
    else requested.abort()
  })
}

const code = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  shutdown: { requested: requested.signal, force: force.signal }
})
// Exit even if a library left a timer or keep-alive socket behind.
process.exit(code)
