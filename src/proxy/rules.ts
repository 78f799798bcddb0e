/**
 * The interception rules as data, and their rendering as nftables
 * transactions. Pure: `nftables.ts` runs the scripts.
 *
 * One table of our own (`ip edgemesh`), two NAT base chains that run before
 * kube-proxy's (priority dstnat - 10), and two maps keyed by
 * `ClusterIP . protocol . port`:
 * - `kernel` (verdict map): service ports whose endpoints are reachable
 *   without the tunnel and whose policy nftables can express jump to a chain
 *   that DNATs straight to an endpoint. No userspace copy.
 * - `userspace` (DNAT map): everything else is DNATed to the agent's
 *   listener for that service port.
 * A change touches only the map elements and chains of the service ports
 * that changed, in one atomic `nft -f` transaction.
 */
import { createHash } from 'node:crypto'

export const TABLE = 'edgemesh'
/** Set on the first packet of kernel-path connections from other hosts/containers, so postrouting masquerades them. */
export const MASQUERADE_MARK = 0x00800000

export type L4 = 'tcp' | 'udp'

export interface HostPort { ip: string, port: number }

export type RuleTarget =
  | { kind: 'userspace', listener: HostPort }
  | {
    kind: 'kernel'
    endpoints: readonly HostPort[]
    /** How nftables picks among endpoints. */
    pick: 'round-robin' | 'random'
    /** ClientIP session affinity, seconds (0 = none). */
    affinitySeconds: number
  }

/** Interception for one (ClusterIP, protocol, port). */
export interface PortRule {
  ip: string
  protocol: L4
  port: number
  /** `namespace/name:port`, written as a comment into the ruleset. */
  comment: string
  target: RuleTarget
}

export function ruleKey (r: Pick<PortRule, 'ip' | 'protocol' | 'port'>): string {
  return `${r.ip}/${r.protocol}/${r.port}`
}

/** Chain and set names are derived from the key: stable across restarts, short, and safe in nft syntax. */
export function chainName (key: string): string {
  return `svc-${createHash('sha256').update(key).digest('base64url').slice(0, 12).replace(/[-_]/g, 'x')}`
}

function elementKey (r: PortRule): string {
  return `${r.ip} . ${r.protocol} . ${r.port}`
}

function sameTarget (a: RuleTarget, b: RuleTarget): boolean {
  if (a.kind === 'userspace' || b.kind === 'userspace') {
    return a.kind === 'userspace' && b.kind === 'userspace' && a.listener.ip === b.listener.ip && a.listener.port === b.listener.port
  }
  return a.pick === b.pick && a.affinitySeconds === b.affinitySeconds && a.endpoints.length === b.endpoints.length &&
    a.endpoints.every((ep, i) => ep.ip === b.endpoints[i]?.ip && ep.port === b.endpoints[i]?.port)
}

export function sameRule (a: PortRule, b: PortRule): boolean {
  return a.comment === b.comment && sameTarget(a.target, b.target)
}

function quote (comment: string): string {
  return `"${comment.replace(/["\\]/g, '')}"`
}

const BASE_CHAINS = ['services', 'prerouting', 'output', 'postrouting']
const BASE_SETS = ['sync']

/** The table skeleton. `add` is idempotent, so this is safe on an existing table. */
export function renderSkeleton (): string[] {
  const t = `ip ${TABLE}`
  const key = 'ipv4_addr . inet_proto . inet_service'
  const mark = `0x${MASQUERADE_MARK.toString(16)}`
  return [
    `add table ${t}`,
    `add map ${t} kernel { type ${key} : verdict; }`,
    `add map ${t} userspace { type ${key} : ipv4_addr . inet_service; }`,
    // Always empty: listing it marks the end of a transaction's output in `nft -i`.
    `add set ${t} sync { type ipv4_addr; }`,
    `add chain ${t} services`,
    `flush chain ${t} services`,
    `add rule ${t} services ip daddr . meta l4proto . th dport vmap @kernel`,
    `add rule ${t} services meta l4proto { tcp, udp } dnat ip to ip daddr . meta l4proto . th dport map @userspace`,
    `add chain ${t} prerouting { type nat hook prerouting priority dstnat - 10; }`,
    `flush chain ${t} prerouting`,
    `add rule ${t} prerouting jump services`,
    // `dstnat` is not accepted as a priority keyword in the output hook.
    `add chain ${t} output { type nat hook output priority -110; }`,
    `flush chain ${t} output`,
    `add rule ${t} output jump services`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat - 10; }`,
    `flush chain ${t} postrouting`,
    // Locally originated packets keep their source; forwarded ones are masqueraded.
    `add rule ${t} postrouting meta mark & ${mark} == ${mark} fib saddr type != local meta mark set meta mark & 0x${(~MASQUERADE_MARK >>> 0).toString(16)} masquerade`
  ]
}

function kernelChainBody (r: PortRule, chain: string): string[] {
  const t = `ip ${TABLE}`
  if (r.target.kind !== 'kernel') return []
  const { endpoints, pick, affinitySeconds } = r.target
  const gen = pick === 'random' ? 'random' : 'inc'
  const proto = `meta l4proto ${r.protocol}`
  const lines: string[] = []
  // Forwarded connections (from containers or other hosts) are masqueraded in postrouting, so replies come back through us.
  lines.push(`add rule ${t} ${chain} meta mark set meta mark | 0x${MASQUERADE_MARK.toString(16)}`)
  if (affinitySeconds > 0) {
    endpoints.forEach((_, i) => lines.push(`add rule ${t} ${chain} ip saddr @${chain}-a${i} goto ${chain}-e${i}`))
    const vmap = endpoints.map((_, i) => `${i} : goto ${chain}-e${i}`).join(', ')
    lines.push(`add rule ${t} ${chain} numgen ${gen} mod ${endpoints.length} vmap { ${vmap} }`)
    return lines
  }
  if (endpoints.length === 1) {
    const ep = endpoints[0] as HostPort
    lines.push(`add rule ${t} ${chain} ${proto} dnat ip to ${ep.ip}:${ep.port} comment ${quote(r.comment)}`)
  } else {
    const map = endpoints.map((ep, i) => `${i} : ${ep.ip} . ${ep.port}`).join(', ')
    lines.push(`add rule ${t} ${chain} ${proto} dnat ip to numgen ${gen} mod ${endpoints.length} map { ${map} } comment ${quote(r.comment)}`)
  }
  return lines
}

/** Objects a kernel rule owns besides its chain: affinity sets and per-endpoint chains. */
function kernelExtras (r: PortRule): { sets: string[], chains: string[] } {
  if (r.target.kind !== 'kernel' || r.target.affinitySeconds === 0) return { sets: [], chains: [] }
  const chain = chainName(ruleKey(r))
  return {
    sets: r.target.endpoints.map((_, i) => `${chain}-a${i}`),
    chains: r.target.endpoints.map((_, i) => `${chain}-e${i}`)
  }
}

function addKernel (r: PortRule): string[] {
  if (r.target.kind !== 'kernel') return []
  const t = `ip ${TABLE}`
  const chain = chainName(ruleKey(r))
  const lines = [`add chain ${t} ${chain}`, `flush chain ${t} ${chain}`]
  const extras = kernelExtras(r)
  const seconds = r.target.affinitySeconds
  r.target.endpoints.forEach((ep, i) => {
    if (seconds === 0) return
    const set = extras.sets[i] as string
    const epChain = extras.chains[i] as string
    lines.push(`add set ${t} ${set} { type ipv4_addr; flags dynamic,timeout; timeout ${seconds}s; }`)
    lines.push(`add chain ${t} ${epChain}`, `flush chain ${t} ${epChain}`)
    lines.push(`add rule ${t} ${epChain} update @${set} { ip saddr }`)
    lines.push(`add rule ${t} ${epChain} meta l4proto ${r.protocol} dnat ip to ${ep.ip}:${ep.port} comment ${quote(r.comment)}`)
  })
  lines.push(...kernelChainBody(r, chain))
  lines.push(`add element ${t} kernel { ${elementKey(r)} : goto ${chain} }`)
  return lines
}

function removeElement (r: PortRule): string {
  const t = `ip ${TABLE}`
  return r.target.kind === 'kernel'
    ? `delete element ${t} kernel { ${elementKey(r)} }`
    : `delete element ${t} userspace { ${elementKey(r)} }`
}

/** Chains and sets of a kernel rule, deleted after the map element that refers to them. */
function removeObjects (r: PortRule): string[] {
  if (r.target.kind !== 'kernel') return []
  const t = `ip ${TABLE}`
  const extras = kernelExtras(r)
  const chain = chainName(ruleKey(r))
  // The service chain refers to the endpoint chains and sets: flush it first.
  return [
    `flush chain ${t} ${chain}`,
    ...extras.chains.map(c => `delete chain ${t} ${c}`),
    ...extras.sets.map(s => `delete set ${t} ${s}`),
    `delete chain ${t} ${chain}`
  ]
}

function addRule (r: PortRule): string[] {
  if (r.target.kind === 'userspace') {
    return [`add element ip ${TABLE} userspace { ${elementKey(r)} : ${r.target.listener.ip} . ${r.target.listener.port} }`]
  }
  return addKernel(r)
}

/**
 * The transaction that turns `current` into `desired`, touching only what
 * differs. Empty when nothing differs.
 */
export function renderDiff (current: ReadonlyMap<string, PortRule>, desired: ReadonlyMap<string, PortRule>): string[] {
  const removeElements: string[] = []
  const removeChains: string[] = []
  const adds: string[] = []
  for (const [key, old] of current) {
    const next = desired.get(key)
    if (next !== undefined && sameRule(old, next)) continue
    removeElements.push(removeElement(old))
    // A kernel rule that stays kernel keeps its chain name: only drop what the new one does not recreate.
    const keep = next?.target.kind === 'kernel' ? new Set([chainName(key), ...kernelExtras(next).sets, ...kernelExtras(next).chains]) : new Set<string>()
    for (const line of removeObjects(old)) {
      const name = line.split(' ').at(-1) as string
      if (line.startsWith('delete') && keep.has(name)) continue
      removeChains.push(line)
    }
  }
  for (const [key, next] of desired) {
    const old = current.get(key)
    if (old !== undefined && sameRule(old, next)) continue
    adds.push(...addRule(next))
  }
  return [...removeElements, ...removeChains, ...adds]
}

/**
 * A transaction that makes the table hold exactly `desired`, whatever it
 * held before (names from a previous run in `existing`): used at start and
 * after a failed incremental update. Atomic, and it keeps the table, so
 * packets never see a half-built state and conntrack entries stay valid.
 */
export function renderReplace (desired: ReadonlyMap<string, PortRule>, existing: { chains: readonly string[], sets: readonly string[] }): string[] {
  const t = `ip ${TABLE}`
  // An existing table keeps its base chains and rules untouched: only the maps and service chains are replaced.
  const complete = BASE_CHAINS.every(c => existing.chains.includes(c)) && BASE_SETS.every(n => existing.sets.includes(n))
  const lines = [...(complete ? [] : renderSkeleton()), `flush map ${t} kernel`, `flush map ${t} userspace`]
  const wanted = new Set<string>()
  for (const r of desired.values()) {
    if (r.target.kind !== 'kernel') continue
    const extras = kernelExtras(r)
    wanted.add(chainName(ruleKey(r)))
    for (const n of [...extras.chains, ...extras.sets]) wanted.add(n)
  }
  const stale = existing.chains.filter(c => c.startsWith('svc-') && !wanted.has(c))
  // Flush every stale chain before deleting any: they may refer to each other.
  for (const c of stale) lines.push(`flush chain ${t} ${c}`)
  for (const c of stale) lines.push(`delete chain ${t} ${c}`)
  for (const s of existing.sets) if (s.startsWith('svc-') && !wanted.has(s)) lines.push(`delete set ${t} ${s}`)
  for (const r of desired.values()) lines.push(...addRule(r))
  return lines
}

/** Removes everything we installed (`edgemesh cleanup`). */
export function renderCleanup (): string[] {
  return [`add table ip ${TABLE}`, `delete table ip ${TABLE}`]
}
