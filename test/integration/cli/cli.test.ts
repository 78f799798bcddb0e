import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'yaml'

const entry = new URL('../../../src/bin/edgemesh.ts', import.meta.url).pathname

interface Run { code: number, stdout: string, stderr: string }

function edgemesh (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise(resolve => {
    execFile(process.execPath, [entry, ...args], { env: { PATH: process.env.PATH, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr })
    })
  })
}

async function withFile (content: string, fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-cli-'))
  try {
    const file = join(dir, 'edgemesh-agent.yaml')
    await writeFile(file, content)
    await fn(file)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

test('transport: udp exits 2 naming the key and the allowed values', async () => {
  await withFile('modules:\n  edgeTunnel:\n    enable: true\n    transport: udp\n', async file => {
    const r = await edgemesh(['agent', '--config-file', file], { NODE_NAME: 'n1', NAMESPACE: 'kubeedge' })
    assert.equal(r.code, 2)
    assert.match(r.stderr, /modules\.edgeTunnel\.transport: expected one of "tcp", "ws", got "udp"/)
  })
})

test('a missing config file exits 2 naming the file', async () => {
  const r = await edgemesh(['agent', '--config-file', '/nonexistent/edgemesh-agent.yaml'], { NODE_NAME: 'n1', NAMESPACE: 'ns' })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /config file \/nonexistent\/edgemesh-agent\.yaml does not exist/)
})

test('the agent requires NODE_NAME and NAMESPACE', async () => {
  await withFile('modules: {edgeDNS: {enable: false}}\n', async file => {
    const noNode = await edgemesh(['agent', '--config-file', file], { NAMESPACE: 'kubeedge' })
    assert.equal(noNode.code, 2)
    assert.match(noNode.stderr, /NODE_NAME is required/)
    const noNs = await edgemesh(['agent', '--config-file', file], { NODE_NAME: 'n1' })
    assert.equal(noNs.code, 2)
    assert.match(noNs.stderr, /NAMESPACE is required/)
  })
})

test('--defaultconfig prints a config that loads back to the same defaults', async () => {
  const r = await edgemesh(['agent', '--defaultconfig'])
  assert.equal(r.code, 0)
  const printed = parse(r.stdout)
  assert.equal(printed.modules.edgeTunnel.maxCandidates, 15)
  assert.equal(printed.modules.edgeDNS.enable, true, 'no KUBERNETES_PORT: EdgeMode defaults')
  await withFile(r.stdout, async file => {
    const again = await edgemesh(['agent', '--config-file', file, '--defaultconfig'])
    assert.equal(again.stdout, r.stdout)
  })
  const cloud = await edgemesh(['agent', '--defaultconfig'], { KUBERNETES_PORT: 'tcp://10.96.0.1:443' })
  assert.equal(parse(cloud.stdout).modules.edgeDNS.enable, false)
})

test('--minconfig, --version, --help and unknown commands', async () => {
  const min = await edgemesh(['agent', '--minconfig'])
  assert.equal(min.code, 0)
  assert.equal(parse(min.stdout).modules.edgeTunnel.enable, true)
  const gw = await edgemesh(['gateway', '--minconfig'])
  assert.equal(parse(gw.stdout).modules.edgeGateway.enable, true)
  const v = await edgemesh(['--version'])
  assert.match(v.stdout, /^EdgeMesh-TS \d+\.\d+\.\d+/)
  const h = await edgemesh(['agent', '--help'])
  assert.match(h.stdout, /--config-file/)
  const bad = await edgemesh(['frobnicate'])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /unknown command "frobnicate"/)
  const badFlag = await edgemesh(['agent', '--no-such-flag'])
  assert.equal(badFlag.code, 2)
})

test('psk generate and derive match upstream vectors', async () => {
  const g = await edgemesh(['psk', 'generate'])
  assert.equal(Buffer.from(g.stdout.trim(), 'base64').length, 32)
  await withFile('JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=', async file => {
    const d = await edgemesh(['psk', 'derive', file])
    assert.equal(d.stdout.trim(), 'ef4d5fdb6d1b75ad1b7bc79a7b7f5e69ed77ddfdf8ddee3579de5bf35d1b7bdd')
  })
  await withFile('', async file => {
    const empty = await edgemesh(['psk', 'derive', file])
    assert.equal(empty.code, 1)
    assert.equal(empty.stdout, '')
    assert.match(empty.stderr, /is empty/)
  })
})

/** Runs `edgemesh demo`, sends SIGINT once its output shows `marker` (or after 15 s), and waits for it to exit. */
async function interruptDemo (marker: string): Promise<{ code: unknown, out: string, stopMs: number }> {
  const { spawn } = await import('node:child_process')
  const p = spawn(process.execPath, [entry, 'demo'], { env: { PATH: process.env.PATH } })
  let out = ''
  p.stdout.on('data', (c: Buffer) => { out += c.toString() })
  const deadline = Date.now() + 15_000
  while (!out.includes(marker) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
  const t0 = performance.now()
  p.kill('SIGINT')
  const code = await new Promise(resolve => p.on('exit', resolve))
  return { code, out, stopMs: performance.now() - t0 }
}

test('demo runs a relay and two edge agents: service map, a DNS answer, requests across the relay, the peer table; stops on Ctrl-C', async () => {
  const once = await edgemesh(['demo', '--once'])
  assert.equal(once.code, 0, once.stderr)
  assert.match(once.stdout, /default\/hostname-svc\s+10\.96\.0\.100\s+http-0:12345\/TCP\s+192\.168\.1\.11@ke-edge1/)
  assert.match(once.stdout, /DNS {3}hostname-svc\.demo\.svc\.cluster\.local → 10\.96\.0\.10 /)
  assert.equal(once.stdout.match(/HTTP {2}#\d 10\.96\.0\.10:12345 from demo-edge-1 → "demo-edge-2"/g)?.length, 3, once.stdout)
  // PATH: libp2p goes through the relay; DATA: the requests took the TLS data path, direct on loopback.
  assert.match(once.stdout, /demo-edge-2\s+12D3KooW\w+\s+relay\s+direct\s+\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW\w+\/p2p-circuit/)
  assert.match(once.stdout, /stopped\n$/)

  const { code, out } = await interruptDemo('Ctrl-C to stop')
  assert.equal(code, 0)
  assert.match(out, /stopped\n$/)
})

test('demo: Ctrl-C while the agents are still starting stops it within seconds', async () => {
  const { code, out, stopMs } = await interruptDemo('starting demo-relay')
  assert.equal(code, 0, out)
  assert.ok(stopMs < 15_000, `stopped after ${stopMs.toFixed(0)} ms`)
  assert.match(out, /stopped\n$/)
  assert.doesNotMatch(out, /Ctrl-C to stop/, 'stopped before the demo ran its requests')
})

test('a broken kubeconfig exits 2 naming the file, without a stack trace', async () => {
  await withFile('apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n', async kubeconfig => {
    const r = await edgemesh(['agent', '--config-file', new URL('../../fixtures/config/upstream-agent-configmap.yaml', import.meta.url).pathname],
      { NODE_NAME: 'n1', NAMESPACE: 'kubeedge', KUBECONFIG: kubeconfig, KUBERNETES_PORT: 'tcp://10.96.0.1:443' })
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /EM_ERR_KUBE_CONFIG/)
    assert.ok(r.stderr.includes(kubeconfig), 'names the kubeconfig file')
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
  })
})

/** Each hostile file: exit 2, the file and the key named, no stack trace. */
async function refused (content: string, key: RegExp): Promise<{ ms: number, stderr: string }> {
  let result = { ms: 0, stderr: '' }
  await withFile(content, async file => {
    const t0 = performance.now()
    const r = await edgemesh(['agent', '--config-file', file])
    result = { ms: performance.now() - t0, stderr: r.stderr }
    assert.equal(r.code, 2, r.stderr)
    assert.ok(r.stderr.includes(file), `names the file: ${r.stderr}`)
    assert.match(r.stderr, key)
    assert.doesNotMatch(r.stderr, /\n\s+at |Error:/, 'no stack trace')
    assert.ok(r.stderr.length < 2000, 'a short message')
  })
  return result
}

/** Time the CLI takes to start and refuse a one-line bad config: the cost of the process, not of the file. */
async function baselineMs (): Promise<number> {
  return (await refused('modules: {edgeTunnel: {transport: udp}}\n', /modules\.edgeTunnel\.transport/)).ms
}

test('hostile config 1: an alias bomb exits 2 naming the key', async () => {
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x]']
  for (const [p, n] of ['ab', 'bc', 'cd', 'de', 'ef', 'fg', 'gh', 'hi']) lines.push(`${n as string}: &${n as string} [${Array(9).fill('*' + (p as string)).join(', ')}]`)
  lines.push('modules: {edgeTunnel: {relayNodes: *i}}')
  await refused(lines.join('\n') + '\n', /\n {2}f: expected at most \d+ values with aliases expanded/)
})

test('hostile config 2: 100,000 relayNodes exit 2 naming the key, in under a second more than a trivial refusal', async () => {
  let s = 'modules:\n  edgeTunnel:\n    relayNodes:\n'
  for (let i = 0; i < 100_000; i++) s += `      - nodeName: node-${i}\n        advertiseAddress: [10.0.${(i >> 8) & 255}.${i & 255}]\n`
  const base = await baselineMs()
  const r = await refused(s, /modules\.edgeTunnel\.relayNodes/)
  assert.ok(r.ms - base < 1000, `${Math.round(r.ms)} ms against ${Math.round(base)} ms`)
  const compact = await refused('modules: {edgeTunnel: {relayNodes: [' + Array(100_000).fill('{}').join(',') + ']}}\n', /modules\.edgeTunnel\.relayNodes/)
  assert.ok(compact.ms - base < 1000, `${Math.round(compact.ms)} ms against ${Math.round(base)} ms`)
  let over = 'modules:\n  edgeTunnel:\n    relayNodes:\n'
  for (let i = 0; i < 1001; i++) over += `      - nodeName: node-${i}\n`
  await refused(over, /modules\.edgeTunnel\.relayNodes: expected a list of at most 1000 items, got 1001 items/)
})

test('hostile config 3: a 10 MB string exits 2 naming the key, in under a second more than a trivial refusal', async () => {
  const base = await baselineMs()
  const r = await refused(`modules:\n  edgeTunnel:\n    rendezvous: "${'a'.repeat(10_000_000)}"\n`, /modules\.edgeTunnel\.rendezvous/)
  assert.ok(r.ms - base < 1000, `${Math.round(r.ms)} ms against ${Math.round(base)} ms`)
  await refused(`modules:\n  edgeTunnel:\n    rendezvous: "${'a'.repeat(100_000)}"\n`, /modules\.edgeTunnel\.rendezvous: expected a string of at most 4096 characters/)
})

test('hostile config 4: a duplicate key exits 2 naming the key', async () => {
  await refused('modules:\n  edgeTunnel:\n    enable: true\n    enable: false\n', /modules\.edgeTunnel\.enable: expected each key once .* at line 4/)
})

test('hostile config 5: bridgeDeviceIP 0.0.0.0, or loopback with interception, exits 2 naming the key', async () => {
  await refused('commonConfig: {bridgeDeviceIP: 0.0.0.0}\n', /commonConfig\.bridgeDeviceIP: expected a unicast IPv4 address/)
  await refused('commonConfig: {bridgeDeviceIP: 127.0.0.1}\nmodules: {edgeProxy: {enable: true}}\n', /commonConfig\.bridgeDeviceIP: expected a non-loopback address while modules\.edgeProxy\.interception is "nftables"/)
})

test('hostile config 6: a 21-character bridgeDeviceName exits 2 naming the key', async () => {
  await refused('commonConfig: {bridgeDeviceName: edgemesh0123456789012}\n', /commonConfig\.bridgeDeviceName: expected a string of at most 15 characters/)
})
