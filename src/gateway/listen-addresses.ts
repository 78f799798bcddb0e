/**
 * The addresses the gateway listens on, chosen as upstream's
 * `GetIPsNeedListen`: the IPv4 addresses of `nic` (all interfaces for `*` or
 * empty), kept by `includeIP` (`*` or empty keeps all), then dropped by
 * `excludeIP` (`*` or empty drops none). Entries are IPs or CIDRs.
 */
import { BlockList, isIPv4 } from 'node:net'
import { networkInterfaces } from 'node:os'
import type { NetworkInterfaceInfo } from 'node:os'

export interface ListenSelection {
  nic: string
  includeIP: string
  excludeIP: string
}

function entries (list: string): string[] {
  return list.split(',').map(s => s.trim()).filter(s => s !== '')
}

function blockList (list: string[]): BlockList {
  const b = new BlockList()
  for (const e of list) {
    const [ip, bits] = e.split('/')
    if (ip === undefined || !isIPv4(ip)) continue
    if (bits === undefined) b.addAddress(ip, 'ipv4')
    else b.addSubnet(ip, Number(bits), 'ipv4')
  }
  return b
}

export function listenAddresses (sel: ListenSelection, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  const nics = sel.nic.trim() === '' || sel.nic.trim() === '*' ? undefined : new Set(entries(sel.nic))
  let ips: string[] = []
  for (const [name, addrs] of Object.entries(interfaces)) {
    if (nics !== undefined && !nics.has(name)) continue
    for (const a of addrs ?? []) if (a.family === 'IPv4') ips.push(a.address)
  }
  const include = entries(sel.includeIP)
  if (include.length > 0 && !include.includes('*')) {
    const keep = blockList(include)
    ips = ips.filter(ip => keep.check(ip, 'ipv4'))
  }
  const exclude = entries(sel.excludeIP).filter(e => e !== '*')
  if (exclude.length > 0) {
    const drop = blockList(exclude)
    ips = ips.filter(ip => !drop.check(ip, 'ipv4'))
  }
  return [...new Set(ips)].sort()
}
