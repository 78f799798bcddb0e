// One real agent process on loopback, every listener on, for the abuse
// tests to attack; what they measure of it (alive, open fds, RSS); and the
// flood they attack it with.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { get } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { freePort } from '../helpers/net.ts'

const entry = new URL('../../src/bin/edgemesh.ts', import.meta.url).pathname
const fixture = new URL('../fixtures/standalone/services.yaml', import.meta.url).pathname

/** After a case the agent must be back within these of its baseline. */
const FD_MARGIN = 10
const RSS_MARGIN_BYTES = 40 * 1024 * 1024
const SETTLE_MS = 15_000

export const NODE_NAME = 'abuse-node'

export interface AgentPorts {
  dns: number
  status: number
  metrics: number
  socks5: number
  tunnel: number
  dataPath: number
  /** Userspace proxy listeners on 127.0.0.1, by `clusterIP/tcp/port`. */
  proxy: Record<string, number>
}

export interface AgentOptions {
  /** `secure` runs no data path (its keys prove the PSK, not node keys): the data path tests use `compat`. @default 'secure' */
  identity?: 'secure' | 'compat'
  /** YAML documents served beside the standalone fixture's. */
  services?: string
}

export class Agent {
  readonly ports: AgentPorts
  readonly pskFile: string
  readonly #proc: ChildProcess
  readonly #dir: string
  readonly #stderr: string[]
  readonly #exited: Promise<void>
  #baseline = { fds: 0, rss: 0 }

  constructor (proc: ChildProcess, init: { dir: string, ports: AgentPorts, pskFile: string, stderr: string[] }) {
    this.#proc = proc
    this.#dir = init.dir
    this.ports = init.ports
    this.pskFile = init.pskFile
    this.#stderr = init.stderr
    this.#exited = new Promise(resolve => proc.once('exit', () => resolve()))
  }

  get pid (): number {
    return this.#proc.pid as number
  }

  alive (): boolean {
    return this.#proc.exitCode === null && this.#proc.signalCode === null
  }

  fds (): number {
    return readdirSync(`/proc/${this.pid}/fd`).length
  }

  rssBytes (): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'))
    return Number(m?.[1]) * 1024
  }

  /** Takes the baseline the cases are measured against: call it once the listeners served a first request. */
  markBaseline (): void {
    this.#baseline = { fds: this.fds(), rss: this.rssBytes() }
  }

  /** Fails unless the agent lives and, within 15 s, holds no more fds and RSS than its baseline allows. */
  async settled (): Promise<void> {
    assert.ok(this.alive(), `the agent died; its last lines:\n${this.#stderr.slice(-20).join('\n')}`)
    const end = performance.now() + SETTLE_MS
    let now = { fds: this.fds(), rss: this.rssBytes() }
    while (now.fds > this.#baseline.fds + FD_MARGIN || now.rss > this.#baseline.rss + RSS_MARGIN_BYTES) {
      assert.ok(performance.now() < end, `not back to baseline within ${SETTLE_MS / 1000} s: ${now.fds} fds (baseline ${this.#baseline.fds}), ` +
        `RSS ${mb(now.rss)} MB (baseline ${mb(this.#baseline.rss)} MB)`)
      await delay(200)
      now = { fds: this.fds(), rss: this.rssBytes() }
    }
  }

  /** SIGTERM, SIGKILL when it does not exit within 10 s; then its files are removed. */
  async stop (): Promise<void> {
    if (this.alive()) {
      this.#proc.kill('SIGTERM')
      const timer = setTimeout(() => this.#proc.kill('SIGKILL'), 10_000)
      await this.#exited
      clearTimeout(timer)
    }
    await rm(this.#dir, { recursive: true, force: true })
  }
}

function mb (bytes: number): number {
  return Math.round(bytes / 1024 / 1024)
}

/**
 * Starts the agent on loopback with DNS, the proxy (interception none),
 * SOCKS5, the tunnel as its own relay (20006, the data path), the status
 * server and the metrics port, each on a free port; resolves once it runs.
 */
export async function startAgent (options: AgentOptions = {}): Promise<Agent> {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-abuse-'))
  const pskFile = join(dir, 'psk')
  await writeFile(pskFile, 'edgemesh-ts-test-psk-not-for-any-real-cluster')
  await chmod(pskFile, 0o600)
  let servicesFile = fixture
  if (options.services !== undefined) {
    servicesFile = join(dir, 'services.yaml')
    await writeFile(servicesFile, `${await readFile(fixture, 'utf8')}---\n${options.services}`)
  }
  const ports = { dns: await freePort(), status: await freePort(), metrics: await freePort(), socks5: await freePort(), tunnel: await freePort(), dataPath: await freePort() }
  const config = join(dir, 'edgemesh-agent.yaml')
  await writeFile(config, [
    'kubeAPIConfig:',
    `  standaloneFile: ${servicesFile}`,
    'commonConfig:',
    `  stateDir: ${dir}`,
    '  bridgeDeviceIP: 127.0.0.1',
    `  statusPort: ${ports.status}`,
    'modules:',
    `  edgeDNS: { enable: true, listenPort: ${ports.dns} }`,
    `  edgeProxy: { enable: true, interception: none, socks5Proxy: { enable: true, listenPort: ${ports.socks5} } }`,
    '  edgeTunnel:',
    '    enable: true',
    `    identity: ${options.identity ?? 'secure'}`,
    `    listenPort: ${ports.tunnel}`,
    `    psk: { path: ${pskFile} }`,
    `    dataPath: { port: ${ports.dataPath} }`,
    `    metricConfig: { enable: true, port: ${ports.metrics} }`,
    // Naming this node makes it a relay: the data path port splices too.
    `    relayNodes: [{ nodeName: ${NODE_NAME}, advertiseAddress: [127.0.0.1] }]`
  ].join('\n'))
  const proc = spawn(process.execPath, [entry, 'agent', '--config-file', config], {
    env: { PATH: process.env.PATH, NODE_NAME, NAMESPACE: 'kubeedge' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  // A test process that dies must not leave the agent behind.
  const orphan = (): void => { proc.kill('SIGKILL') }
  process.once('exit', orphan)
  proc.once('exit', () => process.off('exit', orphan))
  const stderr: string[] = []
  let partial = ''
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() as string
    stderr.push(...lines)
    if (stderr.length > 1000) stderr.splice(0, stderr.length - 1000)
  })
  const agent = new Agent(proc, { dir, ports: { ...ports, proxy: {} }, pskFile, stderr })
  try {
    const end = performance.now() + 20_000
    while (!stderr.some(l => l.includes('"msg":"running"'))) {
      if (!agent.alive() || performance.now() > end) throw new Error(`the agent did not start:\n${stderr.join('\n')}`)
      await delay(50)
    }
    const status = JSON.parse((await httpGet(ports.status, '/status')).body) as { proxy: { listeners: Record<string, number> } }
    Object.assign(agent.ports.proxy, status.proxy.listeners)
  } catch (err) {
    await agent.stop()
    throw err
  }
  return agent
}

/** One GET on its own connection (no keep-alive pool holding agent sockets between cases). */
export async function httpGet (port: number, path: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, res => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on ${port}: no answer within 5 s`)))
    req.on('error', reject)
  })
}

export interface FloodOptions {
  connections: number
  /** Written once connected. */
  send?: () => Buffer
  /** Half-closes after `send`: the client leaves. */
  end?: boolean
  /** Then one more byte, this one, every 500 ms. */
  drip?: number
  /** How long a connection the agent keeps open is held before it counts as held. */
  holdMs: number
  /** Source address of each connection (any of 127.0.0.0/8). */
  from?: (i: number) => string
}

export interface FloodResult {
  /** Connections the agent ended or reset. */
  closedByAgent: number
  /** Still open after `holdMs`. */
  held: number
  /** Refused on connect: nothing listens. */
  failed: number
  /** Longest a connection the agent closed lived, from connect to its end. */
  slowestMs: number
  /** Up to 64 bytes of what the agent sent on each connection that got anything. */
  replies: Buffer[]
}

const DRIP_MS = 500

/** Opens `connections` connections to 127.0.0.1:`port` at once and does to each what `options` says. */
export async function flood (port: number, options: FloodOptions): Promise<FloodResult> {
  const result: FloodResult = { closedByAgent: 0, held: 0, failed: 0, slowestMs: 0, replies: [] }
  await Promise.all(Array.from({ length: options.connections }, async (_, i) => { await floodOne(port, options, options.from?.(i), result) }))
  return result
}

async function floodOne (port: number, options: FloodOptions, localAddress: string | undefined, result: FloodResult): Promise<void> {
  await new Promise<void>(resolve => {
    const socket = connect({ host: '127.0.0.1', port, localAddress })
    // A connection reset as soon as it is accepted may fail before 'connect': it counts from here.
    let connectedAt = performance.now()
    let reply = Buffer.alloc(0)
    let drip: NodeJS.Timeout | undefined
    let done = false
    const finish = (outcome: 'agent' | 'held' | 'refused'): void => {
      if (done) return
      done = true
      clearTimeout(hold)
      clearInterval(drip)
      if (outcome === 'refused') result.failed++
      else if (outcome === 'held') result.held++
      else {
        result.closedByAgent++
        result.slowestMs = Math.max(result.slowestMs, performance.now() - connectedAt)
      }
      if (reply.length > 0) result.replies.push(reply)
      socket.destroy()
      resolve()
    }
    const hold = setTimeout(() => finish('held'), options.holdMs)
    socket.on('connect', () => {
      connectedAt = performance.now()
      if (options.send !== undefined) socket.write(options.send())
      if (options.end === true) socket.end()
      const byte = options.drip
      if (byte !== undefined) drip = setInterval(() => socket.write(Buffer.from([byte])), DRIP_MS)
    })
    socket.on('data', (d: Buffer) => { if (reply.length < 64) reply = Buffer.concat([reply, d]).subarray(0, 64) })
    socket.on('end', () => finish('agent'))
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' ? 'refused' : 'agent'))
    socket.on('close', () => finish('agent'))
  })
}

/**
 * Every connection of `r` was closed by the agent (none held, none refused
 * on connect) no later than `maxMs` after it connected; with `minMs`, the
 * last one not before either (its deadline cut it, not a parse error).
 */
export function assertClosed (r: FloodResult, connections: number, bounds: { maxMs: number, minMs?: number }): void {
  assert.deepEqual({ closedByAgent: r.closedByAgent, held: r.held, failed: r.failed }, { closedByAgent: connections, held: 0, failed: 0 })
  assert.ok(r.slowestMs <= bounds.maxMs, `the last connection was closed after ${Math.round(r.slowestMs)} ms (bound ${bounds.maxMs} ms)`)
  if (bounds.minMs !== undefined) assert.ok(r.slowestMs >= bounds.minMs, `the last connection was closed after ${Math.round(r.slowestMs)} ms, before ${bounds.minMs} ms: something other than its deadline closed it`)
}
