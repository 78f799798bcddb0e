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
import { execFile, execFileSync } from 'node:child_process'
import { startControlPlane, haveControlPlaneTools } from '../../helpers/control-plane.ts'
import { freePort } from '../../helpers/net.ts'
import type { ControlPlane } from '../../helpers/control-plane.ts'

const HAVE_DIG = (() => { try { execFileSync('dig', ['-v'], { stdio: 'ignore' }); return true } catch { return false } })()

async function digA (port: number, name: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '+short', '+tries=3', '+time=2', name], (err, stdout) => { if (err !== null) reject(err); else resolve(stdout.trim()) })
  })
}

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
    await writeFile(join(stateDir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster')
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

  test('a Service created after a 20 s API outage answers in DNS within 2 s of the API server\'s return', { skip: HAVE_DIG ? false : 'dig not installed' }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgemesh-outage-'))
    const [dnsPort, statusPort] = [await freePort(), await freePort()]
    const file = join(dir, 'edgemesh-agent.yaml')
    await writeFile(file, [
      'commonConfig:', `  stateDir: ${dir}`, '  bridgeDeviceIP: 127.0.0.1', `  statusPort: ${statusPort}`,
      'modules:', `  edgeDNS: { enable: true, listenPort: ${dnsPort} }`, '  edgeProxy: { enable: false }', '  edgeTunnel: { enable: false }', ''
    ].join('\n'))
    const agent = startAgent({ KUBECONFIG: cp.kubeconfigPath }, file)
    spawned.push(agent)
    try {
      await waitForLine(agent, l => l.msg === 'services synced' && l.source === 'live', 15_000)
      await cp.stopApiServer()
      // Long enough for any retry backoff to grow well past 2 s.
      await new Promise(resolve => setTimeout(resolve, 20_000))
      await cp.startApiServer()
      const back = performance.now()
      await cp.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'after-outage', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 80 }] } })
      let answer = ''
      while (answer === '' && performance.now() - back < 10_000) {
        answer = await digA(dnsPort, 'after-outage.default.svc.cluster.local')
        if (answer === '') await new Promise(resolve => setTimeout(resolve, 50))
      }
      const ms = performance.now() - back
      assert.match(answer, /^\d+\.\d+\.\d+\.\d+$/, `the new Service never answered:\n${agent.lines().map(l => JSON.stringify(l)).join('\n')}`)
      assert.ok(ms <= 2000, `answered ${Math.round(ms)} ms after the API server was back`)
      await stopAgent(agent)
    } finally {
      agent.proc.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('a token the API server rejects at start: the agent keeps serving its persisted state and retries', async () => {
    const first = startAgent({ KUBECONFIG: cp.kubeconfigPath }, config)
    spawned.push(first)
    await waitForLine(first, l => l.msg === 'services synced' && l.source === 'live', 15_000)
    await stopAgent(first)
    // The admin kubeconfig with a token nobody issued (a deleted ServiceAccount's).
    const rejected = join(stateDir, 'rejected.kubeconfig')
    await writeFile(rejected, (await readFile(cp.kubeconfigPath, 'utf8')).replace(/token: [^}\s]+/, 'token: not-a-token-the-server-issued'))
    const agent = startAgent({ KUBECONFIG: rejected }, config)
    spawned.push(agent)
    const warned = await waitForLine(agent, l => typeof l.msg === 'string' && /serving persisted state/.test(l.msg), 20_000)
    assert.equal(warned.level, 'warn')
    const synced = await waitForLine(agent, l => l.msg === 'services synced', 5_000)
    assert.equal(synced.source, 'persisted')
    const refused = agent.lines().find(l => typeof l.msg === 'string' && /refused \(401\); retrying/.test(l.msg))
    assert.ok(refused !== undefined, 'the refusal is logged as such')
    assert.equal(agent.proc.exitCode, null, 'still running')
    await stopAgent(agent)
  })
})

describe('edgemesh agent process with unusable tunnel state', { skip: HAVE_DIG ? false : 'dig not installed (apt-get install dnsutils)' }, () => {
  test('a corrupt tunnel key: DNS keeps answering, readiness and status name the tunnel and why', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgemesh-badstate-'))
    const [dnsPort, statusPort] = [await freePort(), await freePort()]
    try {
      await writeFile(join(dir, 'psk'), 'a test PSK that is long enough to use')
      await writeFile(join(dir, 'tunnel-identity.key'), 'not a key', { mode: 0o600 })
      const file = join(dir, 'edgemesh-agent.yaml')
      await writeFile(file, [
        'kubeAPIConfig:',
        `  standaloneFile: ${new URL('../../fixtures/standalone/services.yaml', import.meta.url).pathname}`,
        'commonConfig:',
        `  stateDir: ${dir}`,
        '  bridgeDeviceIP: 127.0.0.1',
        `  statusPort: ${statusPort}`,
        'modules:',
        '  edgeDNS: { enable: true, listenPort: ' + String(dnsPort) + ' }',
        '  edgeProxy: { enable: true, interception: none }',
        `  edgeTunnel: { enable: true, identity: secure, listenPort: ${await freePort()}, psk: { path: ${join(dir, 'psk')} } }`
      ].join('\n'))
      const agent = startAgent({}, file)
      try {
        const err = await waitForLine(agent, l => typeof l.msg === 'string' && l.msg.startsWith('tunnel not started'), 15_000)
        assert.equal(err.file, join(dir, 'tunnel-identity.key'))
        assert.match(String(err.err), /not a libp2p private key/)
        const answer = await digA(dnsPort, 'hostname-svc.default.svc.cluster.local')
        assert.equal(answer, '10.96.0.100')
        const ready = await fetch(`http://127.0.0.1:${statusPort}/readyz`)
        assert.equal(ready.status, 503)
        assert.match(await ready.text(), /tunnel/)
        const status = await (await fetch(`http://127.0.0.1:${statusPort}/status`)).json() as { tunnel?: { error?: string } }
        assert.match(status.tunnel?.error ?? '', /tunnel-identity\.key/)
      } finally {
        agent.proc.kill('SIGTERM')
        assert.equal((await agent.exited).code, 0)
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
