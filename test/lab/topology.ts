/**
 * Declarative lab topologies: a public segment ("wan"), sites whose nodes sit
 * either on that segment (public) or behind a NAT router, and optional
 * per-link bandwidth limits. `seed` is the standard topology; `mini` is the
 * small one the lab's own tests use.
 */
import { readFile } from 'node:fs/promises'
import { extname } from 'node:path'
import { parse as parseYaml } from 'yaml'

/** A `tc tbf` limit applied in both directions of a link. */
export interface Bandwidth {
  /** tc rate, e.g. '16mbit', '500kbit'. */
  rate: string
  /** tc burst, e.g. '32kb'. @default max(32kb, 20 ms of rate) */
  burst?: string
  /** tc latency (queue bound). @default '50ms' */
  latency?: string
}

/**
 * How a NAT router maps and filters, in RFC 4787 terms (mapping: which
 * public address:port an outbound flow gets; filtering: which inbound packets
 * to that public address:port reach the node). `natRuleset` in lab.ts builds
 * each with nftables.
 *
 * - 'masquerade' (alias 'port-restricted'): endpoint-independent mapping in
 *   practice (the source port is kept, so every destination sees the same
 *   public port), address-and-port-dependent filtering (only replies from the
 *   exact address:port sent to come in). A port-restricted cone.
 * - 'fully-random' (alias 'symmetric'): address-and-port-dependent mapping
 *   (a new random public port for every destination), address-and-port-
 *   dependent filtering.
 * - 'full-cone': endpoint-independent mapping, port kept; endpoint-independent
 *   filtering: once the node has sent from a port, any host may send to that
 *   public port. One node per site (inbound goes to the site's node).
 * - 'address-restricted': endpoint-independent mapping, port kept;
 *   address-dependent filtering: inbound to a public port is admitted from an
 *   address the node sent to from that port, from any source port. One node
 *   per site.
 * - 'symmetric-port-preserving': address-and-port-dependent mapping that keeps
 *   the port when it can: the first destination a local port talks to gets the
 *   same public port, every further destination of that port a random one
 *   (the public port is taken). Address-and-port-dependent filtering.
 * - 'udp-blocked': 'masquerade' for TCP; UDP from the LAN to the wan is dropped.
 * - 'upnp': 'fully-random', and the router runs Debian's miniupnpd (NAT-PMP,
 *   PCP and UPnP-IGD on the LAN): a node may have a port mapped, after which
 *   anyone's packets to that public port reach it. miniupnpd refuses to serve
 *   with a reserved public address (the lab's wan is 198.18.0.0/24), so it is
 *   told a stand-in, 192.0.3.<n>, which it only reports to clients; nothing is
 *   sent there.
 */
export type NatMode =
  | 'masquerade' | 'fully-random'
  | 'full-cone' | 'address-restricted' | 'port-restricted' | 'symmetric' | 'symmetric-port-preserving' | 'udp-blocked' | 'upnp'

/** Every NatMode, in the order of the doc comment above. */
export const natModes: readonly NatMode[] = [
  'masquerade', 'fully-random', 'full-cone', 'address-restricted', 'port-restricted', 'symmetric', 'symmetric-port-preserving', 'udp-blocked', 'upnp'
]

/** Modes that forward unsolicited inbound UDP to the site's node: their sites have exactly one node. */
export const singleNodeNatModes: readonly NatMode[] = ['full-cone', 'address-restricted']

export interface NatRouter {
  /** Router name: its namespace, and a target for `exec`. */
  name: string
  mode: NatMode
  /** Address on the wan segment. */
  publicAddress: string
  /** Router address on the site LAN: the nodes' default gateway. */
  lanAddress: string
  /** Limit on the router's wan link. */
  bandwidth?: Bandwidth
}

export interface LabNode {
  /** Node name: NODE_NAME of its processes and part of its namespace name. */
  name: string
  /** Primary address: on the wan subnet for public sites, on the site subnet behind NAT. */
  address: string
  /** Limit on the node's link to its site LAN (or the wan for public sites). */
  bandwidth?: Bandwidth
}

export interface Site {
  name: string
  /** Absent: the nodes have public addresses on the wan segment. */
  nat?: NatRouter
  /** Site LAN, required behind NAT (e.g. '192.168.1.0/24'). */
  subnet?: string
  nodes: LabNode[]
}

export interface Topology {
  /** Also the default lab id of the CLI: lowercase letters and digits. */
  name: string
  description: string
  /** The public segment, a bridge in the lab's "wan" namespace. */
  wan: { subnet: string }
  sites: Site[]
  /** resolv.conf pods see (`/etc/netns/<ns>.pod/resolv.conf`). @default podResolvConf below */
  podResolvConf?: string
  /** resolv.conf agents (non-pod processes) see. @default the host's file */
  nodeResolvConf?: string
}

/** The address EdgeMesh binds on `edgemesh0`; pods use it as their DNS server. */
export const BRIDGE_IP = '169.254.96.16'

export const defaultPodResolvConf = [
  `nameserver ${BRIDGE_IP}`,
  'search default.svc.cluster.local svc.cluster.local cluster.local',
  'options ndots:5',
  ''
].join('\n')

/**
 * The standard topology. Site A masquerades (port-preserving, same mapping for
 * every destination); site B uses fully-random (symmetric). Both sites use
 * 192.168.1.0/24 on purpose, with distinct host numbers so a cross-site probe
 * has a real target that must stay unreachable.
 */
export const seed: Topology = {
  name: 'seed',
  description: 'cloud site with two public relay nodes; edge site A (2 nodes, masquerade NAT); edge site B (1 node, fully-random NAT)',
  wan: { subnet: '203.0.113.0/24' },
  sites: [
    {
      name: 'cloud',
      nodes: [
        { name: 'k8s-master', address: '203.0.113.10' },
        { name: 'k8s-node1', address: '203.0.113.11' }
      ]
    },
    {
      name: 'edge-a',
      nat: { name: 'nat-a', mode: 'masquerade', publicAddress: '203.0.113.1', lanAddress: '192.168.1.1' },
      subnet: '192.168.1.0/24',
      nodes: [
        { name: 'edge-a1', address: '192.168.1.11' },
        { name: 'edge-a2', address: '192.168.1.12' }
      ]
    },
    {
      name: 'edge-b',
      nat: { name: 'nat-b', mode: 'fully-random', publicAddress: '203.0.113.2', lanAddress: '192.168.1.1' },
      subnet: '192.168.1.0/24',
      nodes: [
        { name: 'edge-b1', address: '192.168.1.21' }
      ]
    }
  ]
}

/** Small topology for the lab's tests: one site per NAT mode, one limited link. */
export const mini: Topology = {
  name: 'mini',
  description: 'two public relays; site "cone" (masquerade, 16mbit link on cone1); site "sym" (fully-random)',
  wan: { subnet: '198.51.100.0/24' },
  sites: [
    {
      name: 'cloud',
      nodes: [
        { name: 'relay1', address: '198.51.100.10' },
        { name: 'relay2', address: '198.51.100.11' }
      ]
    },
    {
      name: 'cone',
      nat: { name: 'nat-cone', mode: 'masquerade', publicAddress: '198.51.100.1', lanAddress: '10.1.0.1' },
      subnet: '10.1.0.0/24',
      nodes: [{ name: 'cone1', address: '10.1.0.11', bandwidth: { rate: '16mbit' } }]
    },
    {
      name: 'sym',
      nat: { name: 'nat-sym', mode: 'fully-random', publicAddress: '198.51.100.2', lanAddress: '10.1.0.1' },
      subnet: '10.1.0.0/24',
      nodes: [{ name: 'sym1', address: '10.1.0.12' }]
    }
  ]
}

/**
 * One site per NAT kind, one node each, and two public relays to observe
 * mappings and filtering from two addresses. Every router has its own public
 * address and LAN (10.2.<n>.0/24, the node at .11).
 */
export const natkinds: Topology = {
  name: 'natkinds',
  description: 'two public relays; one single-node site per NAT kind: full-cone, address-restricted, port-restricted, symmetric, symmetric-port-preserving, udp-blocked, upnp (symmetric, with miniupnpd)',
  wan: { subnet: '198.18.0.0/24' },
  sites: [
    {
      name: 'cloud',
      nodes: [
        { name: 'relay1', address: '198.18.0.10' },
        { name: 'relay2', address: '198.18.0.11' }
      ]
    },
    ...([
      ['fc', 'full-cone'],
      ['ar', 'address-restricted'],
      ['pr', 'port-restricted'],
      ['sym', 'symmetric'],
      ['spp', 'symmetric-port-preserving'],
      ['ub', 'udp-blocked'],
      ['upnp', 'upnp']
    ] as const).map(([short, mode], i): Site => ({
      name: mode,
      nat: { name: `nat-${short}`, mode, publicAddress: `198.18.0.${i + 1}`, lanAddress: `10.2.${i + 1}.1` },
      subnet: `10.2.${i + 1}.0/24`,
      nodes: [{ name: `${short}1`, address: `10.2.${i + 1}.11` }]
    }))
  ]
}

export const topologies: Record<string, Topology> = { seed, mini, natkinds }

export class TopologyError extends Error {
  override readonly name = 'TopologyError'
}

const namePattern = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/
const ratePattern = /^\d+(\.\d+)?(bit|kbit|mbit|gbit)$/

/** Bits per second of a tc rate string ('16mbit' → 16e6). */
export function parseRate (rate: string): number {
  const m = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)$/.exec(rate)
  if (m === null) throw new TopologyError(`bad rate "${rate}": expected a number with bit, kbit, mbit or gbit`)
  const scale = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 }[m[2] as 'bit' | 'kbit' | 'mbit' | 'gbit']
  return Number(m[1]) * scale
}

export function parseIPv4 (s: string): number | undefined {
  const parts = s.split('.')
  if (parts.length !== 4) return undefined
  let n = 0
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined
    n = n * 256 + Number(p)
  }
  return n
}

export interface Cidr { base: number, prefix: number }

export function parseCidr (s: string): Cidr | undefined {
  const [addr, len, ...rest] = s.split('/')
  if (addr === undefined || len === undefined || rest.length > 0 || !/^\d{1,2}$/.test(len)) return undefined
  const base = parseIPv4(addr)
  const prefix = Number(len)
  if (base === undefined || prefix > 30 || prefix < 8) return undefined
  return { base, prefix }
}

export function inCidr (address: string, cidr: Cidr): boolean {
  const a = parseIPv4(address)
  if (a === undefined) return false
  const mask = cidr.prefix === 0 ? 0 : (~0 << (32 - cidr.prefix)) >>> 0
  return ((a & mask) >>> 0) === ((cidr.base & mask) >>> 0)
}

/** Throws TopologyError naming the first problem; returns the topology. */
export function validateTopology (t: Topology): Topology {
  const fail = (msg: string): never => { throw new TopologyError(`topology "${t?.name}": ${msg}`) }
  if (typeof t !== 'object' || t === null) fail('not an object')
  if (typeof t.name !== 'string' || !/^[a-z0-9]{1,12}$/.test(t.name)) fail('name must be 1-12 lowercase letters or digits')
  const wan = parseCidr(t.wan?.subnet ?? '') ?? fail(`wan.subnet "${t.wan?.subnet}" is not an IPv4 CIDR (/8 to /30)`)
  if (!Array.isArray(t.sites) || t.sites.length === 0) fail('needs at least one site')
  const names = new Set<string>(['wan'])
  const wanAddresses = new Set<string>()
  const claim = (name: string, what: string): void => {
    if (typeof name !== 'string' || !namePattern.test(name)) fail(`${what} name "${name}" must be lowercase letters, digits and dashes (max 32)`)
    if (names.has(name)) fail(`name "${name}" is used twice (or is reserved)`)
    names.add(name)
  }
  const checkBandwidth = (b: Bandwidth | undefined, where: string): void => {
    if (b === undefined) return
    if (!ratePattern.test(b.rate ?? '')) fail(`${where}: bandwidth.rate "${b.rate}" must look like 16mbit`)
    if (b.burst !== undefined && !/^\d+(b|kb|mb|k|m)?$/i.test(b.burst)) fail(`${where}: bandwidth.burst "${b.burst}" must look like 32kb`)
    if (b.latency !== undefined && !/^\d+(ms|us|s)$/.test(b.latency)) fail(`${where}: bandwidth.latency "${b.latency}" must look like 50ms`)
  }
  const wanAddress = (a: string, where: string): void => {
    if (!inCidr(a, wan)) fail(`${where}: address "${a}" is not inside wan ${t.wan.subnet}`)
    if (wanAddresses.has(a)) fail(`${where}: address "${a}" is used twice on the wan`)
    wanAddresses.add(a)
  }
  for (const site of t.sites) {
    claim(site.name, 'site')
    if (!Array.isArray(site.nodes) || site.nodes.length === 0) fail(`site "${site.name}" has no nodes`)
    if (site.nat === undefined) {
      if (site.subnet !== undefined) fail(`site "${site.name}": subnet only applies behind NAT`)
      for (const n of site.nodes) {
        claim(n.name, 'node')
        wanAddress(n.address, `node "${n.name}"`)
        checkBandwidth(n.bandwidth, `node "${n.name}"`)
      }
      continue
    }
    const nat = site.nat
    claim(nat.name, 'router')
    if (!natModes.includes(nat.mode)) fail(`router "${nat.name}": mode "${nat.mode}" must be one of ${natModes.join(', ')}`)
    if (singleNodeNatModes.includes(nat.mode) && site.nodes.length !== 1) {
      fail(`site "${site.name}": a ${nat.mode} router forwards inbound UDP to one node, so the site must have exactly one node (has ${site.nodes.length})`)
    }
    wanAddress(nat.publicAddress, `router "${nat.name}"`)
    checkBandwidth(nat.bandwidth, `router "${nat.name}"`)
    const lan = parseCidr(site.subnet ?? '') ?? fail(`site "${site.name}": subnet "${site.subnet}" is not an IPv4 CIDR (/8 to /30)`)
    if (!inCidr(nat.lanAddress, lan)) fail(`router "${nat.name}": lanAddress "${nat.lanAddress}" is not inside ${site.subnet}`)
    const lanAddresses = new Set([nat.lanAddress])
    for (const n of site.nodes) {
      claim(n.name, 'node')
      if (!inCidr(n.address, lan)) fail(`node "${n.name}": address "${n.address}" is not inside ${site.subnet}`)
      if (lanAddresses.has(n.address)) fail(`node "${n.name}": address "${n.address}" is used twice in site "${site.name}"`)
      lanAddresses.add(n.address)
      checkBandwidth(n.bandwidth, `node "${n.name}"`)
    }
  }
  return t
}

/** A built-in topology by name, or a JSON/YAML file holding one. */
export async function loadTopology (nameOrPath: string): Promise<Topology> {
  const builtin = topologies[nameOrPath]
  if (builtin !== undefined) return builtin
  const ext = extname(nameOrPath)
  if (ext !== '.json' && ext !== '.yaml' && ext !== '.yml') {
    throw new TopologyError(`unknown topology "${nameOrPath}": use one of ${Object.keys(topologies).join(', ')} or a .json/.yaml file`)
  }
  const text = await readFile(nameOrPath, 'utf8')
  const data: unknown = ext === '.json' ? JSON.parse(text) : parseYaml(text)
  return validateTopology(data as Topology)
}
