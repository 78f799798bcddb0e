#!/usr/bin/env node
// Thin entry point: tune the heap, wire process signals and streams, run the
// CLI, exit.
import { setFlagsFromString } from 'node:v8'

// Edge nodes are small (the agent's budget is 60 MB idle, 120 MB at 10k
// services). A 1 MB young generation and a size-optimised heap cut RSS by a
// third at 10k services (bench/servicemap) for a little more GC work. Set
// before anything else is loaded so the heap never grows past them; flags
// given on the command line or NODE_OPTIONS win.
const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ')
if (!given.includes('semi-space')) setFlagsFromString('--max-semi-space-size=1')
if (!given.includes('optimize-for-size')) setFlagsFromString('--optimize-for-size')

const { main } = await import('../cli/main.ts')

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
