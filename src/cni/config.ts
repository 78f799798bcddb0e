/**
 * The plugin's network configuration (stdin of every CNI call) and the
 * environment the runtime sets, read with errors that name the field.
 */
import { readFileSync } from 'node:fs'
import { isIPv4 } from 'node:net'
import { ipv4ToNumber, numberToIpv4, prefixMask } from '../net/ipv4.ts'
import { CniError, CNI_DECODE_FAILURE, CNI_INCOMPATIBLE_VERSION, CNI_INVALID_CONFIG, CNI_INVALID_ENV, CNI_TRY_AGAIN_LATER } from './errors.ts'

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const

export interface Subnet {
  /** `10.244.64.0/24` */
  cidr: string
  network: number
  prefix: number
}

export interface CniConfig {
  cniVersion: string
  name: string
  /** The host bridge pods attach to; not the agent's own `edgemesh0` (DNS), which `edgemesh cleanup` deletes. @default edgemesh-cni0 */
  bridge: string
  /** The node's pod block; addresses are leased from it. `subnet`, or `subnetFile`: the agent's claimed block. */
  subnet: Subnet
  /** The bridge's address and the pods' default gateway. @default the subnet's first address */
  gateway: string
  /** @default 1500 */
  mtu: number
  /** Leases live in `<dataDir>/<name>/`, one file per address (host-local's layout). @default /var/lib/cni/networks */
  dataDir: string
  /** The previous plugin's result in a chain (CHECK and DEL get ours back). */
  prevResult: unknown
  /** GC (CNI 1.1): the attachments the runtime still has; every other lease of this network goes. */
  validAttachments: Array<{ containerId: string, ifName: string }>
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC'

export interface CniEnv {
  command: CniCommand
  containerId: string
  /** Path of the container's network namespace. */
  netns: string
  ifName: string
}

export function parseSubnet (cidr: string, field: string): Subnet {
  const [ip, bits] = cidr.split('/')
  const prefix = Number(bits)
  if (ip === undefined || !isIPv4(ip) || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) {
    throw new CniError(CNI_INVALID_CONFIG, `${field}: "${cidr}" is not an IPv4 CIDR with a prefix from /8 to /30`)
  }
  const mask = prefixMask(prefix)
  const network = ((ipv4ToNumber(ip) ?? 0) & mask) >>> 0
  return { cidr: `${numberToIpv4(network)}/${prefix}`, network, prefix }
}

export function inSubnet (s: Subnet, ip: string): boolean {
  const mask = prefixMask(s.prefix)
  return isIPv4(ip) && (((ipv4ToNumber(ip) ?? 0) & mask) >>> 0) === s.network
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/

/** Reads stdin's JSON. VERSION needs only `cniVersion`, which may be absent. */
export function parseConfig (text: string, command: CniCommand): CniConfig {
  let raw: Record<string, unknown>
  try {
    raw = JSON.parse(text) as Record<string, unknown>
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('not an object')
  } catch (err) {
    throw new CniError(CNI_DECODE_FAILURE, `network configuration on stdin is not a JSON object (${(err as Error).message})`)
  }
  const cniVersion = typeof raw.cniVersion === 'string' ? raw.cniVersion : '1.0.0'
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniError(CNI_INCOMPATIBLE_VERSION, `cniVersion ${cniVersion} is not supported (${SUPPORTED_VERSIONS.join(', ')})`)
  }
  const str = (key: string, fallback?: string): string => {
    const v = raw[key] ?? fallback
    if (typeof v !== 'string' || v === '') throw new CniError(CNI_INVALID_CONFIG, `${key} is required (a string)`)
    return v
  }
  if (command === 'VERSION') return { cniVersion, name: '', bridge: '', subnet: { cidr: '', network: 0, prefix: 0 }, gateway: '', mtu: 0, dataDir: '', prevResult: undefined, validAttachments: [] }
  const name = str('name')
  if (!NAME.test(name)) throw new CniError(CNI_INVALID_CONFIG, `name "${name}" may hold letters, digits, _, . and - only`)
  const bridge = str('bridge', 'edgemesh-cni0')
  if (bridge.length > 15 || !NAME.test(bridge)) throw new CniError(CNI_INVALID_CONFIG, `bridge "${bridge}" is not an interface name (at most 15 letters, digits, _, . and -)`)
  const subnet = parseSubnet(typeof raw.subnet === 'string' || typeof raw.subnetFile !== 'string' ? str('subnet') : blockFrom(raw.subnetFile), typeof raw.subnet === 'string' ? 'subnet' : 'subnetFile')
  const gateway = typeof raw.gateway === 'string' ? raw.gateway : numberToIpv4(subnet.network + 1)
  if (!inSubnet(subnet, gateway)) throw new CniError(CNI_INVALID_CONFIG, `gateway ${gateway} is not in subnet ${subnet.cidr}`)
  const mtu = raw.mtu ?? 1500
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 9000) throw new CniError(CNI_INVALID_CONFIG, 'mtu must be an integer from 576 to 9000')
  const attachments = raw['cni.dev/valid-attachments'] ?? []
  if (!Array.isArray(attachments)) throw new CniError(CNI_INVALID_CONFIG, 'cni.dev/valid-attachments must be a list')
  const validAttachments = attachments.map((a: { containerID?: unknown, ifname?: unknown }, i) => {
    if (typeof a?.containerID !== 'string' || typeof a.ifname !== 'string') throw new CniError(CNI_INVALID_CONFIG, `cni.dev/valid-attachments[${i}] needs containerID and ifname`)
    return { containerId: a.containerID, ifName: a.ifname }
  })
  return { cniVersion, name, bridge, subnet, gateway, mtu, dataDir: str('dataDir', '/var/lib/cni/networks'), prevResult: raw.prevResult, validAttachments }
}

/** The pod block the agent claimed (`subnetFile`, its state file: `{"node": ..., "block": "10.244.64.0/24"}`). */
function blockFrom (file: string): string {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new CniError(CNI_TRY_AGAIN_LATER, `subnetFile ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): the agent has not claimed this node's pod block yet`)
  }
  let block: unknown
  try { block = (JSON.parse(text) as { block?: unknown }).block } catch { block = undefined }
  if (typeof block !== 'string') throw new CniError(CNI_INVALID_CONFIG, `subnetFile ${file} holds no "block"`)
  return block
}

export function parseEnv (env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND
  if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK' && command !== 'VERSION' && command !== 'STATUS' && command !== 'GC') {
    throw new CniError(CNI_INVALID_ENV, `CNI_COMMAND is ${command === undefined ? 'not set' : `"${command}"`}: ADD, DEL, CHECK, VERSION, STATUS or GC`)
  }
  const need = (key: string): string => {
    const v = env[key]
    if (v === undefined || v === '') throw new CniError(CNI_INVALID_ENV, `${key} is required for ${command}`)
    return v
  }
  if (command === 'VERSION' || command === 'STATUS' || command === 'GC') return { command, containerId: '', netns: '', ifName: '' }
  const ifName = need('CNI_IFNAME')
  if (ifName.length > 15 || !NAME.test(ifName)) throw new CniError(CNI_INVALID_ENV, `CNI_IFNAME "${ifName}" is not an interface name`)
  // DEL may come after the namespace is gone: then there is nothing in it to remove.
  return { command, containerId: need('CNI_CONTAINERID'), netns: command === 'DEL' ? env.CNI_NETNS ?? '' : need('CNI_NETNS'), ifName }
}
