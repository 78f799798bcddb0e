import { describe, test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Lab, mini } from '../../lab/index.ts'
import { run } from '../../lab/netns.ts'
import { rootOnly, waitFor } from './helpers.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const cli = fileURLToPath(new URL('../../lab/cli.ts', import.meta.url))
const holdLab = fileURLToPath(new URL('./fixtures/hold-lab.ts', import.meta.url))

function names (dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : []
}

/** Everything of lab `id` still on the machine; empty when it is fully gone. */
function remains (id: string): string[] {
  const prefix = `eml-${id}-`
  return [
    ...names('/run/netns').filter(n => n.startsWith(prefix)).map(n => `netns ${n}`),
    ...names('/etc/netns').filter(n => n.startsWith(prefix)).map(n => `/etc/netns/${n}`),
    ...names('/run/edgemesh-lab').filter(n => n === id || n === `${id}.json`).map(n => `/run/edgemesh-lab/${n}`)
  ]
}

async function lab (args: string[]): Promise<{ stdout: string, stderr: string, code: number | null }> {
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  return await run([process.execPath, cli, ...args], { cwd: root, env, timeoutMs: 60_000 })
}

/** A background process whose stdout we can wait on. */
function start (argv: string[]): { child: ChildProcess, output: () => string, exited: Promise<number | null> } {
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  const [cmd, ...args] = argv
  const child = spawn(cmd as string, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.on('data', (b: Buffer) => { out += b.toString() })
  child.stderr?.on('data', (b: Buffer) => { out += b.toString() })
  const exited = new Promise<number | null>(resolve => child.on('exit', (code) => resolve(code)))
  return { child, output: () => out, exited }
}

async function rootLinks (): Promise<string[]> {
  return (await run(['ip', '-br', 'link'])).stdout.split('\n').map(l => (l.split(' ')[0] ?? '').split('@')[0] ?? '').filter(n => n !== '')
}

// Names the lab gives links (all inside its namespaces): none may show up in the root namespace.
const labLinkName = /^(eth0|wan0|lan0|br0|[wl]\d+)$|eml/

describe('lab cleanup', rootOnly, () => {
  const started: ChildProcess[] = []
  const ids: string[] = []
  const newId = (): string => {
    const id = Lab.newId()
    ids.push(id)
    return id
  }

  after(async () => {
    for (const c of started) if (c.exitCode === null) c.kill('SIGKILL')
    for (const id of ids) if (remains(id).length > 0) await lab(['down', '--id', id])
  })

  test('`lab up seed` then `lab down` leaves no namespace, link, rule or file behind', async () => {
    const id = newId()
    const before = await rootLinks()
    const up = await lab(['up', 'seed', '--id', id])
    assert.equal(up.code, 0, up.stderr)
    assert.match(up.stdout, /edge-a1 +node +edge-a +192\.168\.1\.11 +203\.0\.113\.1/)
    assert.ok(remains(id).length > 0)

    const status = await lab(['status', '--id', id, '--json'])
    assert.equal((JSON.parse(status.stdout) as Array<{ owner: unknown }>)[0]?.owner, null, 'left up, detached')
    const exec = await lab(['exec', '--id', id, 'edge-b1', '--', 'ip', '-br', 'addr', 'show', 'eth0'])
    assert.equal(exec.code, 0, exec.stderr)
    assert.match(exec.stdout, /192\.168\.1\.21\/24/)

    // Another process's start must not sweep a detached lab.
    const other = await Lab.up(mini, { id: newId() })
    await other.down()
    assert.ok(remains(id).some(r => r.startsWith('netns')), 'detached lab survived a sweep')

    const down = await lab(['down', '--id', id])
    assert.equal(down.code, 0, down.stderr)
    assert.deepEqual(remains(id), [])
    const added = (await rootLinks()).filter(n => !before.includes(n))
    assert.deepEqual(added.filter(n => labLinkName.test(n)), [], 'no lab link in the root namespace')
    assert.doesNotMatch((await run(['nft', 'list', 'ruleset'])).stdout, /eml_/, 'no lab rules in the root namespace')
  })

  test('leftovers of a killed run are removed at the next start; a live lab is kept', async () => {
    const killed = newId()
    const live = newId()
    const a = start([process.execPath, holdLab, killed])
    const b = start([process.execPath, holdLab, live])
    started.push(a.child, b.child)
    await waitFor('both labs ready', () => a.output().includes('ready') && b.output().includes('ready'), 30_000)
    assert.ok(remains(killed).length > 0)

    a.child.kill('SIGKILL')
    await a.exited
    const next = await Lab.up(mini, { id: newId() })
    await next.down()
    assert.deepEqual(remains(killed), [], 'killed run swept')
    assert.ok(remains(live).some(r => r.startsWith('netns')), `live lab kept: ${b.output()}`)

    // SIGTERM: the owner's signal hook tears its lab down.
    b.child.kill('SIGTERM')
    assert.equal(await b.exited, 143)
    assert.deepEqual(remains(live), [])
  })

  test('an uncaught exception in the owner tears its lab down', async () => {
    const id = newId()
    const p = start([process.execPath, holdLab, id, '--crash'])
    started.push(p.child)
    const code = await p.exited
    assert.match(p.output(), /ready/)
    assert.match(p.output(), /deliberate crash/)
    assert.notEqual(code, 0)
    assert.deepEqual(remains(id), [])
  })

  test('Ctrl-C on `lab up --foreground` tears the lab down', async () => {
    const id = newId()
    const p = start([process.execPath, cli, 'up', 'mini', '--id', id, '--foreground'])
    started.push(p.child)
    await waitFor('foreground lab ready', () => p.output().includes('ready') || p.child.exitCode !== null, 30_000)
    assert.match(p.output(), /ready/)
    assert.ok(remains(id).length > 0)
    p.child.kill('SIGINT')
    assert.equal(await p.exited, 130)
    assert.deepEqual(remains(id), [])
  })
})
