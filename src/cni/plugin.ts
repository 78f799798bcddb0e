/**
 * `edgemesh cni`: a CNI plugin (spec 1.0, and 1.1's STATUS and GC) for edge
 * nodes that run pods without a CNI: each pod gets a veth on the node's
 * bridge and an address leased from the node's block, with the bridge as its
 * default gateway. ADD is undone step by step when a step fails; DEL is
 * idempotent (it succeeds when nothing is left, or the namespace is gone).
 */
import { parseConfig, parseEnv, SUPPORTED_VERSIONS } from './config.ts'
import type { CniConfig, CniEnv } from './config.ts'
import { CniError, CNI_NETWORK_SETUP } from './errors.ts'
import { LeaseStore } from './ipam.ts'
import { hostVethName, Netlink } from './netlink.ts'

export interface CniResult {
  cniVersion: string
  interfaces: Array<{ name: string, mac: string, sandbox?: string }>
  ips: Array<{ address: string, gateway: string, interface: number }>
  routes: Array<{ dst: string, gw?: string }>
  dns: Record<string, never>
}

export interface CniOutcome {
  /** 0 on success; 1 with the spec's error object on stdout otherwise. */
  exitCode: number
  stdout: string
}

function leases (c: CniConfig): LeaseStore {
  return new LeaseStore(c.dataDir, c.name, c.subnet, c.gateway)
}

async function add (c: CniConfig, e: CniEnv, nl: Netlink): Promise<CniResult> {
  const store = leases(c)
  const ip = await store.allocate(e.containerId, e.ifName)
  const host = hostVethName(e.containerId, e.ifName)
  const peer = `tmp${host.slice(3)}`
  const cidr = `${ip}/${c.subnet.prefix}`
  try {
    await nl.ensureBridge(c.bridge, `${c.gateway}/${c.subnet.prefix}`, c.mtu)
    return await nl.inNamespace(e.netns, async ns => {
      const existing = await nl.link(e.ifName, ns)
      if (existing !== undefined && !existing.addresses.includes(cidr)) {
        throw new CniError(CNI_NETWORK_SETUP, `${e.ifName} already exists in ${e.netns} without ${cidr}`)
      }
      if (existing === undefined) {
        await nl.ip(['link', 'del', host], /Cannot find device/)
        await nl.ip(['link', 'add', host, 'mtu', String(c.mtu), 'type', 'veth', 'peer', 'name', peer, 'mtu', String(c.mtu)])
        await nl.ip(['link', 'set', peer, 'netns', ns])
        await nl.ip(['-n', ns, 'link', 'set', peer, 'name', e.ifName])
        await nl.ip(['-n', ns, 'link', 'set', 'lo', 'up'])
        await nl.ip(['-n', ns, 'link', 'set', e.ifName, 'up'])
        await nl.ip(['-n', ns, 'addr', 'add', cidr, 'dev', e.ifName])
        await nl.ip(['-n', ns, 'route', 'replace', 'default', 'via', c.gateway, 'dev', e.ifName])
        await nl.ip(['link', 'set', host, 'master', c.bridge, 'up'])
      }
      const hostLink = await nl.link(host)
      const podLink = await nl.link(e.ifName, ns)
      return {
        cniVersion: c.cniVersion,
        interfaces: [{ name: host, mac: hostLink?.mac ?? '' }, { name: e.ifName, mac: podLink?.mac ?? '', sandbox: e.netns }],
        ips: [{ address: cidr, gateway: c.gateway, interface: 1 }],
        routes: [{ dst: '0.0.0.0/0', gw: c.gateway }],
        dns: {}
      }
    })
  } catch (err) {
    // Nothing half made stays behind: the veth pair goes with its host end, the lease with it.
    await nl.ip(['link', 'del', host], /Cannot find device/).catch(() => {})
    await store.release(e.containerId, e.ifName).catch(() => {})
    throw err
  }
}

async function del (c: CniConfig, e: CniEnv, nl: Netlink): Promise<void> {
  await nl.ip(['link', 'del', hostVethName(e.containerId, e.ifName)], /Cannot find device/)
  await leases(c).release(e.containerId, e.ifName)
}

async function check (c: CniConfig, e: CniEnv, nl: Netlink): Promise<void> {
  const ip = await leases(c).find(e.containerId, e.ifName)
  if (ip === undefined) throw new CniError(CNI_NETWORK_SETUP, `no address is leased to ${e.containerId}/${e.ifName} in ${c.subnet.cidr}`)
  const host = hostVethName(e.containerId, e.ifName)
  const hostLink = await nl.link(host)
  if (hostLink?.master !== c.bridge) throw new CniError(CNI_NETWORK_SETUP, `${host} is ${hostLink === undefined ? 'missing' : `not on ${c.bridge}`}`)
  await nl.inNamespace(e.netns, async ns => {
    const link = await nl.link(e.ifName, ns)
    if (link === undefined) throw new CniError(CNI_NETWORK_SETUP, `${e.ifName} is missing in ${e.netns}`)
    if (!link.addresses.includes(`${ip}/${c.subnet.prefix}`)) throw new CniError(CNI_NETWORK_SETUP, `${e.ifName} in ${e.netns} has ${link.addresses.join(', ') || 'no address'}, not ${ip}/${c.subnet.prefix}`)
  })
}

/** Releases every lease (and its host veth) of an attachment the runtime no longer lists. */
async function gc (c: CniConfig, nl: Netlink): Promise<void> {
  const valid = new Set(c.validAttachments.map(a => `${a.containerId}\r\n${a.ifName}`))
  const store = leases(c)
  for (const o of await store.owners()) {
    if (valid.has(`${o.containerId}\r\n${o.ifName}`)) continue
    await nl.ip(['link', 'del', hostVethName(o.containerId, o.ifName)], /Cannot find device/)
    await store.release(o.containerId, o.ifName)
  }
}

/** One CNI call: the environment and stdin in, what to print and the exit code out. */
export async function runCni (env: NodeJS.ProcessEnv, stdin: string, nl = new Netlink()): Promise<CniOutcome> {
  let version = '1.0.0'
  try {
    const e = parseEnv(env)
    const c = parseConfig(stdin === '' && e.command === 'VERSION' ? '{}' : stdin, e.command)
    version = c.cniVersion
    switch (e.command) {
      case 'VERSION': return { exitCode: 0, stdout: JSON.stringify({ cniVersion: version, supportedVersions: SUPPORTED_VERSIONS }) }
      case 'ADD': return { exitCode: 0, stdout: JSON.stringify(await add(c, e, nl)) }
      case 'DEL': await del(c, e, nl); return { exitCode: 0, stdout: '' }
      case 'CHECK': await check(c, e, nl); return { exitCode: 0, stdout: '' }
      // Ready whenever the configuration reads: leases and links need nothing else running.
      case 'STATUS': return { exitCode: 0, stdout: '' }
      case 'GC': await gc(c, nl); return { exitCode: 0, stdout: '' }
    }
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(CNI_NETWORK_SETUP, (err as Error).message)
    return { exitCode: 1, stdout: JSON.stringify({ cniVersion: version, code: e.cniCode, msg: e.message, ...(e.details !== undefined ? { details: e.details } : {}) }) }
  }
}
