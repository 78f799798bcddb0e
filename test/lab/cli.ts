/**
 * npm run lab -- <command>
 *   up <topology|file.yaml|file.json> [--id ID] [--foreground] [--keep-logs]
 *   down [--id ID] [--all [--force]]
 *   exec [--id ID] [--pod NAME] <node> -- <command...>
 *   status [--id ID] [--json]
 *   topologies
 *   sweep
 */
import { spawn } from 'node:child_process'
import { parseArgs } from 'node:util'
import { Lab } from './lab.ts'
import { findBinary } from './netns.ts'
import { DEFAULT_STATE_DIR, isLive, listStates, nsPrefix, sweepLeftovers, teardownById } from './state.ts'
import type { LabState } from './state.ts'
import { loadTopology, topologies } from './topology.ts'

const usage = `usage: npm run lab -- <command>
  up <topology|file.yaml|file.json> [--id ID] [--foreground] [--keep-logs]
      build a lab (default id: the topology name) and leave it up;
      --foreground keeps it until Ctrl-C instead
  down [--id ID] [--all [--force]]
      tear a lab down (--all: every lab not owned by a live process; --force: those too)
  exec [--id ID] [--pod NAME] <node> -- <command...>
      run a command inside a node (as a pod: pod resolv.conf and POD_NAME)
  status [--id ID] [--json]
  topologies      list the built-in topologies
  sweep           remove leftovers of killed runs`

class UsageError extends Error {}

async function pickId (given: string | undefined): Promise<string> {
  if (given !== undefined) return given
  const states = await listStates()
  if (states.length === 1) return (states[0] as LabState).id
  const detached = states.filter(s => s.owner === null)
  if (detached.length === 1) return (detached[0] as LabState).id
  if (states.length === 0) throw new UsageError('no lab is up')
  throw new UsageError(`several labs are up (${states.map(s => s.id).join(', ')}): pass --id`)
}

function ownerText (s: LabState): string {
  if (s.owner === null) return 'detached (left up by lab up)'
  return isLive(s) ? `owned by running pid ${s.owner.pid}` : `owner pid ${s.owner.pid} is dead (leftover)`
}

async function status (id: string | undefined, json: boolean): Promise<void> {
  const states = (await listStates()).filter(s => id === undefined || s.id === id)
  if (json) {
    console.log(JSON.stringify(states, null, 2))
    return
  }
  if (states.length === 0) {
    console.log(id === undefined ? 'no lab is up' : `no lab "${id}"`)
    return
  }
  for (const s of states) {
    const lab = await Lab.attach(s.id)
    console.log(`lab ${s.id}: topology ${s.topology.name}, ${s.status}, ${ownerText(s)}, since ${s.createdAt}`)
    console.log(`  ${s.topology.description}`)
    const rows = [...lab.nodes(), ...lab.routers()].map(n => {
      const m = lab.member(n)
      return [m.name, m.kind, m.site, m.address, m.publicAddress, m.netns]
    })
    table([['NAME', 'KIND', 'SITE', 'ADDRESS', 'SEEN AS', 'NETNS'], ...rows])
    for (const p of s.processes) console.log(`  pid ${p.pid} on ${p.node}${p.pod === undefined ? '' : ` pod ${p.pod}`}: ${p.argv.join(' ')} > ${p.logPath}`)
  }
}

function table (rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? []
  for (const r of rows) console.log('  ' + r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd())
}

async function up (args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      id: { type: 'string' },
      foreground: { type: 'boolean', default: false },
      'keep-logs': { type: 'boolean', default: false }
    }
  })
  const name = positionals[0]
  if (name === undefined) throw new UsageError('up needs a topology')
  const topology = await loadTopology(name)
  const lab = await Lab.up(topology, { id: values.id ?? topology.name, keepLogs: values['keep-logs'] })
  if (values.foreground) {
    console.log(`lab ${lab.id} is up (${topology.name}); Ctrl-C tears it down`)
    await status(lab.id, false)
    console.log('ready')
    // The lab's signal hooks tear it down and exit; this only keeps the process alive.
    setInterval(() => {}, 1 << 30)
    return await new Promise<number>(() => {})
  }
  await lab.detach()
  await status(lab.id, false)
  console.log(`lab ${lab.id} is up; remove it with: npm run lab -- down --id ${lab.id}`)
  return 0
}

async function down (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      id: { type: 'string' },
      all: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false }
    }
  })
  if (values.all) {
    for (const s of await listStates()) {
      if (s.owner !== null && isLive(s) && !values.force) {
        console.log(`skipping lab ${s.id}: ${ownerText(s)} (use --force)`)
        continue
      }
      await teardownById(DEFAULT_STATE_DIR, s.id)
      console.log(`lab ${s.id} is down`)
    }
    const swept = await sweepLeftovers()
    if (swept.length > 0) console.log(`removed leftovers: ${swept.join(', ')}`)
    return 0
  }
  const id = await pickId(values.id)
  const problems = await teardownById(DEFAULT_STATE_DIR, id)
  for (const p of problems) console.error(p)
  console.log(`lab ${id} is down (namespaces ${nsPrefix(id)}*)`)
  return problems.length === 0 ? 0 : 1
}

async function exec (args: string[]): Promise<number> {
  const sep = args.indexOf('--')
  if (sep < 0) throw new UsageError('exec needs -- before the command')
  const command = args.slice(sep + 1)
  const { values, positionals } = parseArgs({
    args: args.slice(0, sep),
    allowPositionals: true,
    options: { id: { type: 'string' }, pod: { type: 'string' } }
  })
  const node = positionals[0]
  if (node === undefined || command.length === 0) throw new UsageError('exec needs a node and a command')
  const lab = await Lab.attach(await pickId(values.id))
  const ns = lab.netns(node, { pod: values.pod !== undefined })
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_NAME: node }
  if (values.pod !== undefined) env.POD_NAME = values.pod
  const child = spawn(findBinary('ip') ?? 'ip', ['netns', 'exec', ns, ...command], { stdio: 'inherit', env })
  // The child shares the terminal and gets Ctrl-C itself.
  process.on('SIGINT', () => {})
  return await new Promise<number>((resolve) => {
    child.on('error', (err) => {
      console.error(`cannot run ip netns exec: ${err.message}`)
      resolve(127)
    })
    child.on('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)))
  })
}

async function main (argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  if (['up', 'down', 'exec', 'status', 'sweep'].includes(cmd ?? '') && process.getuid?.() !== 0) {
    console.error('the lab needs root (network namespaces, nftables)')
    return 1
  }
  switch (cmd) {
    case 'up': return await up(rest)
    case 'down': return await down(rest)
    case 'exec': return await exec(rest)
    case 'status': {
      const { values } = parseArgs({ args: rest, options: { id: { type: 'string' }, json: { type: 'boolean', default: false } } })
      await status(values.id, values.json)
      return 0
    }
    case 'topologies':
      for (const t of Object.values(topologies)) console.log(`${t.name}: ${t.description}`)
      return 0
    case 'sweep': {
      const swept = await sweepLeftovers()
      console.log(swept.length === 0 ? 'no leftovers' : `removed leftovers: ${swept.join(', ')}`)
      return 0
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(usage)
      return cmd === undefined ? 2 : 0
    default:
      throw new UsageError(`unknown command "${cmd}"`)
  }
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    console.error(`${(err as Error).message}\n\n${usage}`)
    process.exitCode = 2
  } else {
    console.error((err as Error).message)
    process.exitCode = 1
  }
}
