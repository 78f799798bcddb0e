// The agent as a user runs it: a real process, an upstream config file, a
// kubeconfig for a real kube-apiserver, SIGTERM to stop.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises'
import { parseDocument } from 'yaml'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startControlPlane, haveControlPlaneTools } from '../../helpers/control-plane.ts'
import type { ControlPlane } from '../../helpers/control-plane.ts'

const entry = new URL('../../../src/bin/edgemesh.ts', import.meta.url).pathname
const upstreamConfig = new URL('../../fixtures/config/upstream-agent-configmap.yaml', import.meta.url).pathname

interface Agent { proc: ChildProcess, lines: () => Array<Record<string, unknown>>, exited: Promise<{ code: number | null, signal: string | null }> }

function startAgent (env: NodeJS.ProcessEnv, configFile = upstreamConfig): Agent {
  const proc = spawn(process.execPath, [entry, 'agent', '--config-file', configFile], {
    env: { PATH: process.env.PATH, NODE_NAME: 'edge-node-1', NAMESPACE: 'kubeedge', KUBERNETES_PORT: 'tcp://10.96.0.1:443', ...env },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let buf = ''
  const parsed: Array<Record<string, unknown>> = []
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      try { parsed.push(JSON.parse(line)) } catch { parsed.push({ msg: line }) }
    }
  })
  const exited = new Promise<{ code: number | null, signal: string | null }>(resolve => proc.on('exit', (code, signal) => resolve({ code, signal })))
  return { proc, lines: () => parsed, exited }
}

async function waitForLine (agent: Agent, match: (l: Record<string, unknown>) => boolean, ms: number): Promise<Record<string, unknown>> {
  const end = performance.now() + ms
  while (performance.now() < end) {
    const hit = agent.lines().find(match)
    if (hit !== undefined) return hit
    if (agent.proc.exitCode !== null) break
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error(`no matching log line within ${ms} ms; got:\n${agent.lines().map(l => JSON.stringify(l)).join('\n')}`)
}

async function stopAgent (agent: Agent): Promise<number> {
  const t0 = performance.now()
  agent.proc.kill('SIGTERM')
  const { code } = await agent.exited
  assert.equal(code, 0, 'clean exit')
  return performance.now() - t0
}

describe('edgemesh agent process', { skip: haveControlPlaneTools() ? false : 'control plane not built (npm run tools)' }, () => {
  let cp: ControlPlane
  let stateDir: string
  let config: string
  const spawned: Agent[] = []

  before(async () => {
    cp = await startControlPlane()
    stateDir = await mkdtemp(join(tmpdir(), 'edgemesh-state-'))
    // The upstream file, plus what keeps the test off the host: a state dir instead of /var/lib, no
    // interception rules or bridge device, a PSK file instead of /etc/edgemesh/psk.
    const doc = parseDocument(await readFile(upstreamConfig, 'utf8'))
    doc.setIn(['commonConfig', 'stateDir'], stateDir)
    doc.setIn(['modules', 'edgeProxy', 'interception'], 'none')
    doc.setIn(['modules', 'edgeTunnel', 'psk', 'path'], join(stateDir, 'psk'))
    doc.setIn(['modules', 'edgeTunnel', 'listenPort'], 20_106)
    config = join(stateDir, 'edgemesh-agent.yaml')
    await writeFile(join(stateDir, 'psk'), 'JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=')
    await writeFile(config, doc.toString())
    for (let i = 0; i < 3; i++) {
      await cp.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: 'default' }, spec: { ports: [{ name: 'http', port: 80 + i }] } })
    }
  })
  after(async () => {
    for (const a of spawned) a.proc.kill('SIGKILL')
    await cp?.stop()
    await rm(stateDir, { recursive: true, force: true })
  })

  test('loads the upstream ConfigMap file, syncs, exits within 5 s of SIGTERM', async () => {
    const agent = startAgent({ KUBECONFIG: cp.kubeconfigPath }, config)
    spawned.push(agent)
    const synced = await waitForLine(agent, l => l.msg === 'services synced', 15_000)
    // 3 test services + default/kubernetes
    assert.equal(synced.services, 4)
    assert.equal(synced.source, 'live')
    const ms = await stopAgent(agent)
    assert.ok(ms < 5000, `stopped in ${Math.round(ms)} ms`)
  })

  test('an unreachable API server: the agent serves the persisted state and says so', async () => {
    // Let the first agent persist a state, then take the API server away.
    const first = startAgent({ KUBECONFIG: cp.kubeconfigPath }, config)
    spawned.push(first)
    await waitForLine(first, l => l.msg === 'services synced' && l.source === 'live', 15_000)
    await stopAgent(first)
    await cp.stopApiServer()
    try {
      const second = startAgent({ KUBECONFIG: cp.kubeconfigPath }, config)
      spawned.push(second)
      const warned = await waitForLine(second, l => typeof l.msg === 'string' && /serving persisted state/.test(l.msg), 20_000)
      assert.equal(warned.level, 'warn')
      const synced = await waitForLine(second, l => l.msg === 'services synced', 5_000)
      assert.equal(synced.source, 'persisted')
      assert.equal(synced.services, 4)
      await stopAgent(second)
    } finally {
      await cp.startApiServer()
    }
  })
})
