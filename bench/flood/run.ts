// bench/flood: unauthenticated connection floods against the ports anyone can
// reach (issue 18, item 1), beside the node's DNS.
//
//   npm run bench:flood [-- --connections 20000 --concurrency 1000 --kinds tls-byte,silent,relay-byte,libp2p-junk]
//
// Two bundled agents on loopback, as the image runs them: an edge node and a
// relay (its relayNodes names itself). Each scenario opens `connections`
// connections at `concurrency` at once, from 16 source addresses, against one
// port of one agent: `tls-byte` sends 0x16 (a TLS record header) and closes,
// `relay-byte` sends 'R' (the relay control magic) and closes, `silent` sends
// 0x16 and waits for the agent to close it, `libp2p-junk` sends 64 random bytes
// to the tunnel port and closes. Meanwhile a DNS query goes to the edge agent
// every 100 ms. Reported per scenario: the agent's peak RSS, its fds back at
// baseline (+5) how long after the last client left, and DNS answered / asked.
// Acceptance: peak RSS < 150 MB, fds back within 10 s, every DNS query answered.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { cpus, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { bundleForBench } from '../bundle.ts'
import { AGENT_NODE_FLAGS, MALLOC_ENV } from '../../src/bin/node-flags.ts'
import { freePort } from '../../test/helpers/net.ts'
import { rssMB, takeBenchLock } from '../netns.ts'

takeBenchLock('bench:flood')

const { values } = parseArgs({ options: { connections: { type: 'string', default: '20000' }, concurrency: { type: 'string', default: '1000' }, kinds: { type: 'string', default: 'tls-byte,silent,relay-byte,libp2p-junk' } } })
const KINDS = new Set(values.kinds.split(','))
const CONNECTIONS = Number(values.connections)
const CONCURRENCY = Number(values.concurrency)
const SOURCES = Array.from({ length: 16 }, (_, i) => `127.0.1.${i + 1}`)
const root = new URL('../../', import.meta.url).pathname

const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

interface Agent { proc: ChildProcess, dns: number, tunnel: number, data: number }

async function startAgent (bundle: string, dir: string, name: string, relay: { name: string, port: number }, ports: { dns: number, tunnel: number, data: number }): Promise<Agent> {
  const config = join(dir, `${name}.yaml`)
  writeFileSync(config, [
    `kubeAPIConfig: {standaloneFile: ${join(root, 'examples/standalone/services.yaml')}}`,
    `commonConfig: {stateDir: ${join(dir, name)}, bridgeDeviceIP: 127.0.0.1, statusPort: 0}`,
    'modules:',
    `  edgeDNS: {enable: true, listenPort: ${ports.dns}}`,
    '  edgeProxy: {enable: false}',
    `  edgeTunnel: {enable: true, listenPort: ${ports.tunnel}, dataPath: {port: ${ports.data}}, psk: {path: ${join(dir, 'psk')}},`,
    `    relayNodes: [{nodeName: ${relay.name}, advertiseAddress: ['127.0.0.1:${relay.port}']}]}`
  ].join('\n'))
  const proc = spawn(process.execPath, [...AGENT_NODE_FLAGS, bundle, 'agent', '--config-file', config], { env: { ...MALLOC_ENV, PATH: process.env.PATH, NODE_NAME: name, NAMESPACE: 'kubeedge' }, stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  proc.stderr?.on('data', (c: Buffer) => { log = (log + c.toString()).slice(-20_000) })
  const end = Date.now() + 20_000
  while (!log.includes('"msg":"DNS listening"')) {
    if (proc.exitCode !== null || Date.now() > end) throw new Error(`agent ${name} did not start:\n${log}`)
    await sleep(50)
  }
  return { proc, ...ports }
}

/** One DNS query to the edge agent; true when answered within 1 s. */
async function dnsAnswered (port: number): Promise<boolean> {
  const sock = createSocket('udp4')
  // A query for hostname-svc.default.svc.cluster.local A, ID 0x1234.
  const name = 'hostname-svc.default.svc.cluster.local'.split('.').flatMap(l => [l.length, ...Buffer.from(l)])
  const query = Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...name, 0, 0, 1, 0, 1])
  try {
    return await new Promise(resolve => {
      const timer = setTimeout(() => resolve(false), 1000)
      sock.on('message', m => { clearTimeout(timer); resolve(m.readUInt16BE(0) === 0x1234) })
      sock.on('error', () => { clearTimeout(timer); resolve(false) })
      sock.send(query, port, '127.0.0.1')
    })
  } finally {
    sock.close()
  }
}

type Kind = 'tls-byte' | 'relay-byte' | 'silent' | 'libp2p-junk'

/** One attacking connection; resolves when its socket is closed. */
async function attack (port: number, kind: Kind, localAddress: string): Promise<void> {
  await new Promise<void>(resolve => {
    const s = connect({ port, host: '127.0.0.1', localAddress })
    s.on('error', () => {})
    // Read whatever the agent sends (a relay's nonce), or its FIN never surfaces.
    s.resume()
    s.once('close', () => resolve())
    s.once('connect', () => {
      if (kind === 'tls-byte') s.end(Buffer.from([0x16]))
      else if (kind === 'relay-byte') s.end(Buffer.from('R'))
      else if (kind === 'libp2p-junk') s.end(randomBytes(64))
      else s.write(Buffer.from([0x16]))
    })
  })
}

async function scenario (target: Agent, dnsPort: number, port: number, kind: Kind): Promise<{ peakMB: number, baseMB: number, fdsBackMs: number, dns: [number, number], ms: number }> {
  const pid = target.proc.pid as number
  const baseFds = fds(pid)
  const baseMB = rssMB(pid)
  let peakMB = baseMB
  const sampling = { on: true }
  const sampler = (async () => { while (sampling.on) { peakMB = Math.max(peakMB, rssMB(pid)); await sleep(100) } })()
  const dns: [number, number] = [0, 0]
  const prober = (async () => { while (sampling.on) { dns[1]++; if (await dnsAnswered(dnsPort)) dns[0]++; await sleep(100) } })()
  const t0 = performance.now()
  let next = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    while (next < CONNECTIONS) { next++; await attack(port, kind, SOURCES[w % SOURCES.length] as string) }
  }))
  const ms = performance.now() - t0
  const left = performance.now()
  let fdsBackMs = NaN
  while (performance.now() - left < 30_000) {
    if (fds(pid) <= baseFds + 5) { fdsBackMs = performance.now() - left; break }
    await sleep(50)
  }
  await sleep(1000)
  sampling.on = false
  await Promise.all([sampler, prober])
  if (target.proc.exitCode !== null) throw new Error('the agent died')
  return { peakMB, baseMB, fdsBackMs, dns, ms }
}

const bundle = await bundleForBench(join(root, 'src/bin/edgemesh.ts'))
const dir = mkdtempSync(join(tmpdir(), 'edgemesh-flood-'))
writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster', { mode: 0o600 })
const agents: Agent[] = []
try {
  const relayPorts = { dns: await freePort(), tunnel: await freePort(), data: await freePort() }
  const relay = { name: 'flood-relay', port: relayPorts.tunnel }
  agents.push(await startAgent(bundle, dir, 'flood-relay', relay, relayPorts))
  agents.push(await startAgent(bundle, dir, 'flood-edge', relay, { dns: await freePort(), tunnel: await freePort(), data: await freePort() }))
  const [relayAgent, edge] = agents as [Agent, Agent]
  await sleep(3000)
  const runs: Array<[string, Agent, number, Kind]> = [
    ['edge node, data path port', edge, edge.data, 'tls-byte'],
    ['edge node, data path port', edge, edge.data, 'silent'],
    ['relay, data path port', relayAgent, relayAgent.data, 'tls-byte'],
    ['relay, data path port', relayAgent, relayAgent.data, 'relay-byte'],
    ['relay, data path port', relayAgent, relayAgent.data, 'silent'],
    ['relay, tunnel port (libp2p)', relayAgent, relayAgent.tunnel, 'libp2p-junk']
  ]
  console.log(`machine: ${cpus().length} vCPU ${cpus()[0]?.model ?? ''}, kernel ${release()}, node ${process.version}; ${CONNECTIONS} connections per scenario, ${CONCURRENCY} at once, from ${SOURCES.length} source addresses`)
  console.log('| target | kind | RSS before MB | peak RSS MB | fds back at baseline after | DNS answered | flood took |')
  console.log('|---|---|---|---|---|---|---|')
  let ok = true
  for (const [what, target, port, kind] of runs.filter(r => KINDS.has(r[3]))) {
    process.stderr.write(`[bench:flood] ${what}, ${kind}\n`)
    const r = await scenario(target, edge.dns, port, kind)
    ok &&= r.peakMB < 150 && r.fdsBackMs <= 10_000 && r.dns[0] === r.dns[1]
    console.log(`| ${what} | ${kind} | ${r.baseMB.toFixed(1)} | ${r.peakMB.toFixed(1)} | ${Number.isNaN(r.fdsBackMs) ? '> 30 s' : `${(r.fdsBackMs / 1000).toFixed(1)} s`} | ${r.dns[0]}/${r.dns[1]} | ${(r.ms / 1000).toFixed(1)} s |`)
  }
  console.log(ok ? 'acceptance: met (peak < 150 MB, fds back within 10 s, every DNS query answered)' : 'acceptance: NOT met')
  process.exitCode = ok ? 0 : 1
} finally {
  for (const a of agents) a.proc.kill('SIGTERM')
  await sleep(500)
  rmSync(dir, { recursive: true, force: true })
}
