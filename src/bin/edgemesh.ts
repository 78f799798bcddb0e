#!/usr/bin/env node
// Thin entry point: set the Node flags, wire process signals and streams, run the
// CLI, exit.
import { setFlagsFromString } from 'node:v8'
import { compilersToTurnOn, nodeFlagsFor } from './node-flags.ts'
import { turnOnTurboFanWhenBusy } from './turbofan.ts'
import { releaseStartupPagesWhenIdle, unmapStartupPages } from './startup-pages.ts'

// Edge nodes are small (the agent's budget is 69 MB idle, 120 MB at 10k
// services): the Node flags, when the command line did not give them (see
// node-flags.ts). Flags given on the command line or NODE_OPTIONS win.
const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ')
for (const flag of nodeFlagsFor(process.argv[2])) if (!given.includes(flag.replace(/^--(no-)?/, '').split('=')[0] as string)) setFlagsFromString(flag)

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
  shutdown: { requested: requested.signal, force: force.signal },
  onRunning: (log, { releaseStartupPages }) => {
    // TurboFan and Sparkplug, off while it starts and idles, come on once it works (node-flags.ts).
    const flags = compilersToTurnOn(process.argv[2])
    if (flags.length > 0) {
      turnOnTurboFanWhenBusy({
        turnOn: share => {
          setFlagsFromString(flags.join(' '))
          log.info('optimising compiler on', { flags, cpu: Number(share.toFixed(3)) })
        }
      })
    }
    if (releaseStartupPages) {
      releaseStartupPagesWhenIdle({
        release: () => {
          const t0 = performance.now()
          unmapStartupPages().then(r => {
            log.info('startup pages released', { ...r, fileMBBefore: Math.round(r.fileMBBefore), fileMBAfter: Math.round(r.fileMBAfter), ms: Math.round(performance.now() - t0) })
          }, (err: unknown) => { log.warn('startup pages kept: they could not be unmapped', { err }) })
        }
      })
    }
  }
})
// Exit even if a library left a timer or keep-alive socket behind.
process.exit(code)
