/**
 * A running lab: namespaces built from a Topology, commands and long-lived
 * processes inside them, and guaranteed teardown.
 *
 * Namespaces are `eml-<id>-<name>` (nodes, routers, and `wan` for the public
 * bridge). Each node also has a pod view `eml-<id>-<node>.pod`: the same
 * network namespace under a second name, so `ip netns exec` bind-mounts the
 * pod resolv.conf for pods while agents keep the node's.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { mkdirSync, readFileSync } from 'node:fs'
import { basename, extname, join } from 'node:path'
import type { Logger } from '../../src/observability/logger.ts'
import { noopLogger } from '../../src/observability/logger.ts'
import { track, untrack } from './cleanup.ts'
import type { SyncTeardown } from './cleanup.ts'
import { addNetns, addVeth, aliasNetns, ensureTools, ipIn, nftIn, run, sysctlIn, tbfIn } from './netns.ts'
import type { RunResult } from './netns.ts'
import { LabProcess } from './processes.ts'
import {
  DEFAULT_STATE_DIR, NS_PREFIX, currentOwner, isLive, labDir, readState, statePath, sweepLeftovers,
  teardownById, teardownByIdSync, writeState, writeStateSync
} from './state.ts'
import type { LabState, ProcessRecord } from './state.ts'
import { BRIDGE_IP, defaultPodResolvConf, parseCidr, parseRate, validateTopology } from './topology.ts'
import type { Bandwidth, LabNode, NatMode, NatRouter, Site, Topology } from './topology.ts'

export interface LabOptions {
  /** 1-12 lowercase letters/digits; namespaces are eml-<id>-*. @default a random id */
  id?: string
  /** @default /run/edgemesh-lab */
  stateDir?: string
  /** Keep logs/ after down (for debugging). @default false */
  keepLogs?: boolean
  /** Remove leftovers of killed runs first. @default true */
  sweep?: boolean
  logger?: Logger
}

export interface ExecOptions {
  /** Run as this pod: the pod resolv.conf and POD_NAME. */
  pod?: string
  env?: Record<string, string>
  input?: string
  /** @default 30000 */
  timeoutMs?: number
  cwd?: string
}

export interface SpawnOptions {
  /** Run as this pod: the pod resolv.conf, POD_NAME, and the log file name. */
  pod?: string
  env?: Record<string, string>
  /** Log file name (logs/<node>/<name>.log). @default pod name or the program's name */
  name?: string
  cwd?: string
}

export type ExecResult = RunResult

/** What a lab name refers to. */
export interface LabMember {
  name: string
  kind: 'node' | 'router'
  site: string
  /** Primary address: the node's own address, or a router's public one. */
  address: string
  /** The address the public segment sees it as (its own, or its NAT's). */
  publicAddress: string
  netns: string
  /** Pod view of a node's namespace. */
  podNetns?: string
}

const idPattern = /^[a-z0-9]{1,12}$/

export class LabError extends Error {
  override readonly name = 'LabError'
}

export class Lab implements SyncTeardown {
  readonly id: string
  readonly topology: Topology
  readonly stateDir: string
  readonly logDir: string
  readonly #members: Map<string, LabMember>
  readonly #processes: LabProcess[] = []
  readonly #logNames = new Set<string>()
  readonly #keepLogs: boolean
  readonly #log: Logger
  #down: Promise<void> | undefined

  private constructor (state: LabState, stateDir: string, options: LabOptions) {
    this.id = state.id
    this.topology = state.topology
    this.stateDir = stateDir
    this.logDir = state.logDir
    this.#keepLogs = options.keepLogs ?? false
    this.#log = options.logger ?? noopLogger
    this.#members = members(state.id, state.topology)
  }

  /** A fresh random id, for tests that must not collide. */
  static newId (): string {
    return 't' + randomBytes(4).toString('hex')
  }

  /** Builds the topology. On failure everything built so far is removed. */
  static async up (topology: Topology, options: LabOptions = {}): Promise<Lab> {
    validateTopology(topology)
    const id = options.id ?? Lab.newId()
    if (!idPattern.test(id)) throw new LabError(`lab id "${id}" must be 1-12 lowercase letters or digits`)
    const stateDir = options.stateDir ?? DEFAULT_STATE_DIR
    await ensureTools()
    if (options.sweep !== false) await sweepLeftovers(stateDir)
    const existing = await readState(stateDir, id)
    if (existing !== undefined && isLive(existing)) {
      const who = existing.owner === null ? 'left up by `lab up`' : `owned by pid ${existing.owner.pid}`
      throw new LabError(`lab "${id}" is already up (${who}); run \`npm run lab -- down --id ${id}\` first`)
    }
    // Dead owner or no state: whatever carries this id is a leftover.
    await teardownById(stateDir, id, { graceMs: 500 })

    const state: LabState = {
      version: 1,
      id,
      topology,
      owner: currentOwner(),
      status: 'building',
      createdAt: new Date().toISOString(),
      namespaces: [...members(id, topology).values()].flatMap(m => m.podNetns === undefined ? [m.netns] : [m.netns, m.podNetns]).concat(`${NS_PREFIX}${id}-wan`),
      logDir: join(labDir(stateDir, id), 'logs'),
      processes: []
    }
    await mkdir(stateDir, { recursive: true })
    try {
      // Exclusive create: of two processes racing for one id, one loses here.
      await writeFile(statePath(stateDir, id), JSON.stringify(state, null, 2), { flag: 'wx' })
    } catch (err) {
      throw new LabError(`lab "${id}" is being created by another process`, { cause: err })
    }
    const lab = new Lab(state, stateDir, options)
    track(lab)
    const t0 = performance.now()
    try {
      await mkdir(state.logDir, { recursive: true })
      await lab.#build()
    } catch (err) {
      await lab.down().catch(() => {})
      throw new LabError(`building lab "${id}" (${topology.name}) failed: ${(err as Error).message}`, { cause: err })
    }
    state.status = 'up'
    await writeState(stateDir, state)
    lab.#log.info('lab up', { id, topology: topology.name, ms: Math.round(performance.now() - t0) })
    return lab
  }

  /** A lab built by another process (e.g. `lab up`), to exec into or tear down. */
  static async attach (id: string, options: Pick<LabOptions, 'stateDir' | 'keepLogs' | 'logger'> = {}): Promise<Lab> {
    const stateDir = options.stateDir ?? DEFAULT_STATE_DIR
    const state = await readState(stateDir, id)
    if (state === undefined) throw new LabError(`no lab "${id}" (no ${statePath(stateDir, id)})`)
    return new Lab(state, stateDir, options)
  }

  /** Node names (not routers), in topology order. */
  nodes (): string[] {
    return [...this.#members.values()].filter(m => m.kind === 'node').map(m => m.name)
  }

  routers (): string[] {
    return [...this.#members.values()].filter(m => m.kind === 'router').map(m => m.name)
  }

  member (name: string): LabMember {
    const m = this.#members.get(name)
    if (m === undefined) throw new LabError(`lab "${this.id}" has no node or router "${name}" (has ${[...this.#members.keys()].join(', ')})`)
    return m
  }

  /** Primary address: a node's own address, a router's public one. */
  address (name: string): string {
    return this.member(name).address
  }

  /** The source address the public segment sees for this node. */
  publicAddress (name: string): string {
    return this.member(name).publicAddress
  }

  /** Namespace name, e.g. for `ip -n`. */
  netns (name: string, options: { pod?: boolean } = {}): string {
    const m = this.member(name)
    if (options.pod === true) {
      if (m.podNetns === undefined) throw new LabError(`"${name}" is a router: it runs no pods`)
      return m.podNetns
    }
    return m.netns
  }

  /** Runs a command to completion inside a node (or router); never throws on its exit code. */
  async exec (node: string, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const ns = this.netns(node, { pod: options.pod !== undefined })
    return await run(['ip', 'netns', 'exec', ns, ...argv], {
      env: this.#env(node, options.pod, options.env),
      input: options.input,
      timeoutMs: options.timeoutMs ?? 30_000,
      cwd: options.cwd
    })
  }

  /** Starts a long-lived process inside a node; `down()` stops it. */
  spawn (node: string, argv: readonly string[], options: SpawnOptions = {}): LabProcess {
    if (this.#down !== undefined) throw new LabError(`lab "${this.id}" is down`)
    const ns = this.netns(node, { pod: options.pod !== undefined })
    const logPath = this.#logPath(node, options.name ?? options.pod ?? programName(argv))
    const proc = new LabProcess({
      node,
      pod: options.pod,
      netns: ns,
      argv,
      env: this.#env(node, options.pod, options.env),
      logPath,
      cwd: options.cwd
    })
    this.#processes.push(proc)
    this.#record({ pid: proc.pid, node, pod: options.pod, argv: [...argv], logPath })
    return proc
  }

  /** Processes this object spawned. */
  processes (): readonly LabProcess[] {
    return this.#processes
  }

  /** Every log of a node (or of all nodes), each under a header line: for failure messages. */
  async logs (node?: string): Promise<string> {
    const nodes = node === undefined ? [...this.#members.keys()] : [node]
    const parts: string[] = []
    for (const n of nodes) {
      const dir = join(this.logDir, n)
      let files: string[]
      try {
        files = (await readdir(dir)).sort()
      } catch {
        continue
      }
      for (const f of files) parts.push(`==> ${n}/${f} <==\n${await readFile(join(dir, f), 'utf8')}`)
    }
    return parts.join('\n')
  }

  /** Leaves the lab up after this process exits; only `down` removes it then. */
  async detach (): Promise<void> {
    const state = await readState(this.stateDir, this.id)
    if (state === undefined) throw new LabError(`lab "${this.id}" has no state file`)
    state.owner = null
    await writeState(this.stateDir, state)
    untrack(this)
  }

  /** Stops every process and removes namespaces, links, rules and files. Idempotent. */
  down (): Promise<void> {
    this.#down ??= this.#teardown()
    return this.#down
  }

  /** Exit-hook teardown: no event loop, so everything is synchronous. */
  teardownSync (): void {
    teardownByIdSync(this.stateDir, this.id, { keepLogs: this.#keepLogs })
  }

  async #teardown (): Promise<void> {
    await Promise.all(this.#processes.map(p => p.stop({ graceMs: 3000 })))
    const problems = await teardownById(this.stateDir, this.id, { keepLogs: this.#keepLogs })
    untrack(this)
    if (problems.length > 0) throw new LabError(`lab "${this.id}" teardown left problems:\n${problems.join('\n')}`)
    this.#log.info('lab down', { id: this.id })
  }

  #env (node: string, pod: string | undefined, extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_NAME: node, ...extra }
    // A child node must not think it is part of this test run.
    delete env.NODE_TEST_CONTEXT
    if (pod !== undefined) env.POD_NAME = pod
    else delete env.POD_NAME
    return env
  }

  #logPath (node: string, name: string): string {
    const safe = name.replace(/[^A-Za-z0-9._-]/g, '_')
    let file = safe
    for (let i = 2; this.#logNames.has(`${node}/${file}`) && i < 10_000; i++) file = `${safe}-${i}`
    this.#logNames.add(`${node}/${file}`)
    const dir = join(this.logDir, node)
    // Sync: spawn() returns its handle synchronously.
    mkdirSync(dir, { recursive: true })
    return join(dir, `${file}.log`)
  }

  #record (rec: ProcessRecord): void {
    try {
      const state = JSON.parse(readFileSync(statePath(this.stateDir, this.id), 'utf8')) as LabState
      state.processes.push(rec)
      writeStateSync(this.stateDir, state)
    } catch {
      // Status display only; teardown finds processes through `ip netns pids`.
    }
  }

  async #build (): Promise<void> {
    const t = this.topology
    const wanPrefix = (parseCidr(t.wan.subnet) as { prefix: number }).prefix
    const wanNs = `${NS_PREFIX}${this.id}-wan`
    const all = [...this.#members.values()]
    await Promise.all([wanNs, ...all.map(m => m.netns)].map(addNetns))
    await Promise.all(all.flatMap(m => m.podNetns === undefined ? [] : [aliasNetns(m.netns, m.podNetns)]))
    await ipIn(wanNs, ['link', 'add', 'br0', 'type', 'bridge'])
    await ipIn(wanNs, ['link', 'set', 'br0', 'up'])
    let port = 0
    const jobs: Promise<void>[] = []
    for (const site of t.sites) {
      if (site.nat === undefined) {
        for (const n of site.nodes) {
          jobs.push(this.#link(this.netns(n.name), 'eth0', wanNs, `w${port++}`, 'br0', `${n.address}/${wanPrefix}`, n.bandwidth))
        }
      } else {
        jobs.push(this.#natSite(site, site.nat, wanNs, `w${port++}`, wanPrefix))
      }
    }
    await Promise.all(jobs)
    await Promise.all(t.sites.flatMap(s => s.nodes).map(n => this.#nodeFiles(n)))
  }

  /** A veth from a host namespace to a bridge port; address and limits on the host side. */
  async #link (hostNs: string, hostIf: string, bridgeNs: string, portIf: string, bridge: string, cidr: string, bandwidth: Bandwidth | undefined): Promise<void> {
    await addVeth(hostNs, hostIf, bridgeNs, portIf)
    await ipIn(bridgeNs, ['link', 'set', portIf, 'master', bridge, 'up'])
    await ipIn(hostNs, ['addr', 'add', cidr, 'dev', hostIf])
    await ipIn(hostNs, ['link', 'set', hostIf, 'up'])
    if (bandwidth !== undefined) {
      // tbf shapes egress only: one on each end limits both directions.
      const { rate, burst, latency } = tbfParams(bandwidth)
      await tbfIn(hostNs, hostIf, rate, burst, latency)
      await tbfIn(bridgeNs, portIf, rate, burst, latency)
    }
  }

  async #natSite (site: Site, nat: NatRouter, wanNs: string, wanPort: string, wanPrefix: number): Promise<void> {
    const r = this.netns(nat.name)
    const lanPrefix = (parseCidr(site.subnet ?? '') as { prefix: number }).prefix
    await this.#link(r, 'wan0', wanNs, wanPort, 'br0', `${nat.publicAddress}/${wanPrefix}`, nat.bandwidth)
    await ipIn(r, ['link', 'add', 'lan0', 'type', 'bridge'])
    await ipIn(r, ['addr', 'add', `${nat.lanAddress}/${lanPrefix}`, 'dev', 'lan0'])
    await ipIn(r, ['link', 'set', 'lan0', 'up'])
    await sysctlIn(r, 'net.ipv4.ip_forward', '1')
    await nftIn(r, natRuleset(nat.mode, { publicAddress: nat.publicAddress, nodeAddress: site.nodes[0]?.address }))
    if (nat.mode === 'upnp') {
      const dir = join(this.logDir, nat.name)
      await mkdir(dir, { recursive: true })
      await writeFile(join(dir, 'miniupnpd.conf'), miniupnpdConfig(nat, site.subnet ?? ''))
      const daemon = this.spawn(nat.name, ['miniupnpd', '-f', join(dir, 'miniupnpd.conf'), '-d', '-P', join(dir, 'miniupnpd.pid')], { name: 'miniupnpd' })
      await daemon.waitForOutput('Listening for NAT-PMP', 10_000)
    }
    await Promise.all(site.nodes.map(async (n, j) => {
      const ns = this.netns(n.name)
      await this.#link(ns, 'eth0', r, `l${j}`, 'lan0', `${n.address}/${lanPrefix}`, n.bandwidth)
      await ipIn(ns, ['route', 'add', 'default', 'via', nat.lanAddress])
    }))
  }

  async #nodeFiles (n: LabNode): Promise<void> {
    const m = this.member(n.name)
    // Until the agent binds 169.254.96.16 (its local route then wins), queries
    // fail on the node instead of leaking to the gateway. High metric: an
    // agent adding its own route to it does not collide.
    await ipIn(m.netns, ['route', 'add', 'unreachable', `${BRIDGE_IP}/32`, 'metric', '4096'])
    await writeEtcFile(m.podNetns as string, 'resolv.conf', this.topology.podResolvConf ?? defaultPodResolvConf)
    if (this.topology.nodeResolvConf !== undefined) await writeEtcFile(m.netns, 'resolv.conf', this.topology.nodeResolvConf)
  }
}

/** For node:test: builds the lab and tears it down when the test (or suite hook) ends. */
export async function withLab (t: { after: (fn: () => Promise<void>) => unknown }, topology: Topology, options: LabOptions = {}): Promise<Lab> {
  const lab = await Lab.up(topology, options)
  t.after(() => lab.down())
  return lab
}

/** tbf parameters with defaults: burst at least 32 KiB or 20 ms of rate; 50 ms queue. */
export function tbfParams (b: Bandwidth): { rate: string, burst: string, latency: string } {
  const bytesPerSecond = parseRate(b.rate) / 8
  return {
    rate: b.rate,
    burst: b.burst ?? String(Math.max(32 * 1024, Math.ceil(bytesPerSecond * 0.02))),
    latency: b.latency ?? '50ms'
  }
}

/** What `natRuleset` needs beyond the mode: required by full-cone and address-restricted. */
export interface NatRulesetOptions {
  /** The router's wan address: inbound UDP to it is forwarded. */
  publicAddress?: string
  /** The site's (only) node: where inbound UDP goes. */
  nodeAddress?: string
}

/** How long a NAT kind remembers a mapping's port or peer without outbound traffic. */
const NAT_SET_TIMEOUT = '120s'

/**
 * Router rules for a NatMode (RFC 4787 mapping and filtering; the same words
 * as the NatMode comment in topology.ts):
 *
 * - masquerade / port-restricted: plain masquerade keeps the source port and
 *   reuses it for every destination (endpoint-independent mapping as seen from
 *   outside); only conntrack replies come in (address-and-port-dependent
 *   filtering).
 * - fully-random / symmetric: `masquerade fully-random`: a random public port
 *   per destination (address-and-port-dependent mapping and filtering).
 * - full-cone: masquerade, plus: the forward chain records every UDP source
 *   port that leaves lan0 for wan0 (set `cone_ports`, 120 s); UDP arriving on
 *   wan0 at the public address on such a port is DNATed to the site's node on
 *   the same port and accepted (endpoint-independent filtering). This relies on
 *   masquerade keeping the port, which it does unless two flows collide.
 * - address-restricted: the same with set `peers` of (destination address .
 *   source port): inbound UDP is DNATed only from an address the node sent to
 *   from that port, from any source port (address-dependent filtering). Keyed
 *   by the port as well as the address, so the filter is per mapping as RFC
 *   4787 describes it: a peer one local port talked to does not open another.
 * - symmetric-port-preserving: Linux conntrack already makes one mapping per
 *   destination, but it keeps the source port whenever the reply tuple stays
 *   unique, and the remote end is part of that tuple: the same public port is
 *   reused for every destination, which from outside is endpoint-independent.
 *   nftables has no flag for "keep the port, but only once" (`random` and
 *   `fully-random` never keep it). So: a filter chain after SNAT records each
 *   public UDP port in use (set `busy_ports`, 120 s, refreshed by the flows
 *   that use it); a new UDP flow whose local port is already in use as a
 *   public port gets `masquerade fully-random`, any other plain masquerade
 *   (port kept). The first destination of a local port sees that port, every
 *   further one a random port; the first mapping is forgotten 120 s after its
 *   last packet, not when conntrack drops it. Replies only
 *   (address-and-port-dependent filtering).
 * - udp-blocked: masquerade, and the forward chain drops UDP from lan0 to
 *   wan0 (TCP still passes).
 *
 * Unsolicited wan traffic to the router itself is dropped in every mode.
 */
export function natRuleset (mode: NatMode, options: NatRulesetOptions = {}): string {
  const kind = canonicalNatMode(mode)
  const inbound = kind === 'full-cone' || kind === 'address-restricted'
  if (inbound && (options.publicAddress === undefined || options.nodeAddress === undefined)) {
    throw new LabError(`natRuleset: a ${mode} router needs publicAddress and nodeAddress`)
  }
  const natSets: string[] = []
  const prerouting: string[] = []
  const postrouting: string[] = []
  const afterSnat: string[] = []
  const forward: string[] = []
  if (kind === 'full-cone') {
    natSets.push(`  set cone_ports {
    type inet_service; flags timeout; timeout ${NAT_SET_TIMEOUT};
  }`)
    prerouting.push(`iifname "wan0" ip daddr ${options.publicAddress} udp dport @cone_ports dnat to ${options.nodeAddress}`)
    forward.push(`iifname "lan0" oifname "wan0" meta l4proto udp update @cone_ports { udp sport timeout ${NAT_SET_TIMEOUT} }`)
  } else if (kind === 'address-restricted') {
    natSets.push(`  set peers {
    type ipv4_addr . inet_service; flags timeout; timeout ${NAT_SET_TIMEOUT};
  }`)
    prerouting.push(`iifname "wan0" ip daddr ${options.publicAddress} ip saddr . udp dport @peers dnat to ${options.nodeAddress}`)
    forward.push(`iifname "lan0" oifname "wan0" meta l4proto udp update @peers { ip daddr . udp sport timeout ${NAT_SET_TIMEOUT} }`)
  } else if (kind === 'symmetric-port-preserving') {
    natSets.push(`  set busy_ports {
    type inet_service; flags timeout; timeout ${NAT_SET_TIMEOUT};
  }`)
    postrouting.push('oifname "wan0" udp sport @busy_ports masquerade fully-random')
    afterSnat.push(`oifname "wan0" meta l4proto udp update @busy_ports { udp sport timeout ${NAT_SET_TIMEOUT} }`)
  } else if (kind === 'udp-blocked') {
    forward.push('iifname "lan0" oifname "wan0" meta l4proto udp drop')
  }
  postrouting.push(`oifname "wan0" masquerade${kind === 'fully-random' || kind === 'upnp' ? ' fully-random' : ''}`)
  // A rule can only update a set of its own table: the chains that fill the
  // sets (and udp-blocked's drop) are in eml_nat; eml_filter stays as it was.
  const lines = [
    'table ip eml_nat {',
    ...natSets,
    ...(prerouting.length === 0
      ? []
      : ['  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', ...prerouting.map(r => `    ${r}`), '  }']),
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...postrouting.map(r => `    ${r}`),
    '  }',
    ...(afterSnat.length === 0
      ? []
      : ['  chain postrouting_mapped {', '    # after SNAT: sees the public source port', '    type filter hook postrouting priority srcnat + 10; policy accept;', ...afterSnat.map(r => `    ${r}`), '  }']),
    ...(forward.length === 0
      ? []
      : ['  chain forward_track {', '    type filter hook forward priority filter - 10; policy accept;', ...forward.map(r => `    ${r}`), '  }']),
    '}',
    'table inet eml_filter {',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    '    iifname "wan0" ct state established,related accept',
    '    iifname "wan0" drop',
    '  }',
    '  chain forward_filter {',
    '    type filter hook forward priority filter; policy drop;',
    '    ct state established,related accept',
    ...(inbound ? ['    # inbound UDP the prerouting chain forwarded to the node', '    iifname "wan0" oifname "lan0" ct status dnat accept'] : []),
    ...(kind === 'upnp' ? ['    # inbound to ports miniupnpd mapped', '    iifname "wan0" oifname "lan0" ct status dnat accept'] : []),
    '    iifname "lan0" oifname "wan0" accept',
    '    # bridged LAN traffic passes this hook when br_netfilter is loaded',
    '    iifname "lan0" oifname "lan0" accept',
    '  }',
    '}',
    ...(kind === 'upnp' ? MINIUPNPD_CHAINS : []),
    ''
  ]
  return lines.join('\n')
}

/**
 * The chains miniupnpd (nftables backend) adds its rules to, named in its
 * config (`upnp_table_name`, `upnp_nat_table_name`): DNAT for each mapping in
 * `prerouting_miniupnpd`, its accept in `miniupnpd` (eml_filter admits DNATed
 * packets itself).
 */
const MINIUPNPD_CHAINS = [
  'table inet miniupnpd {',
  '  chain forward { type filter hook forward priority filter - 5; policy accept; jump miniupnpd; }',
  '  chain miniupnpd { }',
  '  chain prerouting { type nat hook prerouting priority dstnat; policy accept; jump prerouting_miniupnpd; }',
  '  chain postrouting { type nat hook postrouting priority srcnat; policy accept; jump postrouting_miniupnpd; }',
  '  chain prerouting_miniupnpd { }',
  '  chain postrouting_miniupnpd { }',
  '}'
]

/** miniupnpd's config for a 'upnp' router: NAT-PMP/PCP and UPnP-IGD for the LAN, mappings only to a node's own address. */
export function miniupnpdConfig (nat: Pick<NatRouter, 'publicAddress'>, subnet: string): string {
  return [
    'ext_ifname=wan0',
    // miniupnpd refuses reserved addresses (the lab wan's 198.18.0.0/24): a stand-in it only reports.
    `ext_ip=192.0.3.${nat.publicAddress.split('.')[3] ?? '1'}`,
    'listening_ip=lan0',
    'port=0',
    'enable_natpmp=yes',
    'enable_upnp=yes',
    'secure_mode=yes',
    'system_uptime=yes',
    'upnp_table_name=miniupnpd',
    'upnp_nat_table_name=miniupnpd',
    'uuid=3e0c7c1a-5b7e-4d2f-9a77-0a1b2c3d4e5f',
    `allow 1024-65535 ${subnet} 1024-65535`,
    'deny 0-65535 0.0.0.0/0 0-65535',
    ''
  ].join('\n')
}

/** The rules a mode is built with: the RFC 4787-style names are aliases of the two original ones. */
function canonicalNatMode (mode: NatMode): Exclude<NatMode, 'port-restricted' | 'symmetric'> {
  if (mode === 'port-restricted') return 'masquerade'
  if (mode === 'symmetric') return 'fully-random'
  return mode
}

function members (id: string, t: Topology): Map<string, LabMember> {
  const out = new Map<string, LabMember>()
  const ns = (name: string): string => `${NS_PREFIX}${id}-${name}`
  for (const site of t.sites) {
    if (site.nat !== undefined) {
      const r = site.nat
      out.set(r.name, { name: r.name, kind: 'router', site: site.name, address: r.publicAddress, publicAddress: r.publicAddress, netns: ns(r.name) })
    }
    for (const n of site.nodes) {
      out.set(n.name, {
        name: n.name,
        kind: 'node',
        site: site.name,
        address: n.address,
        publicAddress: site.nat?.publicAddress ?? n.address,
        netns: ns(n.name),
        podNetns: `${ns(n.name)}.pod`
      })
    }
  }
  return out
}

async function writeEtcFile (ns: string, file: string, content: string): Promise<void> {
  const dir = join('/etc/netns', ns)
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, file), content)
}

function programName (argv: readonly string[]): string {
  const [cmd, script] = argv
  if (cmd === undefined) throw new LabError('spawn needs a command')
  // `node script.ts` is better named after the script.
  const prog = /(^|\/)node$/.test(cmd) || cmd === process.execPath ? (script ?? cmd) : cmd
  return basename(prog, extname(prog))
}
