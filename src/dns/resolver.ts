/**
 * The cluster zone, after the Kubernetes DNS specification (and CoreDNS's
 * kubernetes plugin where the spec is silent). Pure: a question and an index
 * built from a service map snapshot go in, records come out. No sockets, no
 * clock; table-tested in test/unit/dns.
 */
import { isIPv4, isIPv6 } from 'node:net'
import type { ServiceEntry, ServiceKey } from '../servicemap/types.ts'
import { TYPE, ipv6Bytes, ipv6Text } from './wire.ts'
import type { DnsRecord, SoaData } from './wire.ts'

/** What `dns-version.<zone>` answers (the spec version implemented). */
export const SCHEMA_VERSION = '1.1.0'
const MAX_CNAME_HOPS = 8

export interface ZoneInit {
  /** Cluster domain without trailing dot, e.g. `cluster.local`. */
  zone: string
  /** TTL of every answer and the negative TTL (SOA minimum), seconds. */
  ttl: number
  /** Our own address: the target of the zone's NS record. */
  nameserverIP: string
  /** SOA serial; bump it when the data changes. */
  serial: number
}

export type Resolution =
  | {
    kind: 'answer'
    /** NOERROR (0) or NXDOMAIN (3). */
    rcode: 0 | 3
    answers: DnsRecord[]
    authorities: DnsRecord[]
    additionals: DnsRecord[]
    /** Set when an ExternalName points outside the zone: resolve this upstream and append its answers. */
    chase?: { name: string, type: number }
  }
  | { kind: 'forward' }

/** Lookup structures built once per service map change. */
export class ClusterIndex {
  readonly zone: string
  readonly ttl: number
  readonly nameserverIP: string
  readonly serial: number
  readonly services: ReadonlyMap<ServiceKey, ServiceEntry>
  /** Namespaces that have at least one service. */
  readonly namespaces: ReadonlySet<string>
  /** Canonical IP → names that own a PTR for it. */
  readonly reverse: ReadonlyMap<string, readonly string[]>

  constructor (snapshot: ReadonlyMap<ServiceKey, ServiceEntry>, init: ZoneInit) {
    this.zone = init.zone.replace(/\.$/, '').toLowerCase()
    this.ttl = init.ttl
    this.nameserverIP = init.nameserverIP
    this.serial = init.serial >>> 0
    this.services = snapshot
    const namespaces = new Set<string>()
    const reverse = new Map<string, string[]>()
    const addPtr = (ip: string, name: string): void => {
      const key = canonicalIP(ip)
      if (key === undefined) return
      const names = reverse.get(key)
      if (names === undefined) reverse.set(key, [name])
      else if (!names.includes(name)) names.push(name)
    }
    for (const { service, endpoints } of snapshot.values()) {
      namespaces.add(service.namespace)
      const fqdn = `${service.name}.${service.namespace}.svc.${this.zone}`
      if (service.type === 'ExternalName') continue
      for (const ip of service.clusterIPs) addPtr(ip, fqdn)
      if (service.headless) {
        for (const ep of endpoints) if (ep.ready) addPtr(ep.ip, `${endpointLabel(ep.hostname, ep.ip)}.${fqdn}`)
      }
    }
    this.namespaces = namespaces
    this.reverse = reverse
  }

  soa (owner = this.zone): DnsRecord {
    const data: SoaData = {
      mname: `ns.dns.${this.zone}`,
      rname: `hostmaster.${this.zone}`,
      serial: this.serial,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: this.ttl
    }
    return { name: owner, ttl: this.ttl, type: 'SOA', data }
  }
}

/** The label a headless endpoint is known by: its hostname, else its address with dashes. */
export function endpointLabel (hostname: string | undefined, ip: string): string {
  if (hostname !== undefined && hostname !== '') return hostname.toLowerCase()
  return ip.replace(/[.:]/g, '-')
}

function canonicalIP (ip: string): string | undefined {
  if (isIPv4(ip)) return ip
  if (isIPv6(ip)) return ipv6Text(ipv6Bytes(ip))
  return undefined
}

/** The address a reverse name stands for, or undefined for partial or malformed names. */
export function reverseNameToIP (name: string): string | undefined {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.')
    if (parts.length !== 4 || !parts.every(p => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return undefined
    return parts.reverse().join('.')
  }
  if (name.endsWith('.ip6.arpa')) {
    const nibbles = name.slice(0, -'.ip6.arpa'.length).split('.')
    if (nibbles.length !== 32 || !nibbles.every(n => /^[0-9a-f]$/.test(n))) return undefined
    const bytes = new Uint8Array(16)
    nibbles.reverse()
    for (let i = 0; i < 16; i++) bytes[i] = parseInt((nibbles[2 * i] as string) + (nibbles[2 * i + 1] as string), 16)
    return ipv6Text(bytes)
  }
  return undefined
}

/**
 * Answers one question. `name` is lowercase, absolute, without the trailing
 * dot; `qtype` is numeric. Names outside the zone and reverse names for
 * addresses the cluster does not own resolve to `{ kind: 'forward' }`.
 */
export function resolve (index: ClusterIndex, name: string, qtype: number): Resolution {
  return resolveHops(index, name, qtype, 0)
}

function resolveHops (index: ClusterIndex, name: string, qtype: number, hops: number): Resolution {
  const zone = index.zone
  if (name === zone || name.endsWith('.' + zone)) {
    const rel = name === zone ? '' : name.slice(0, -(zone.length + 1))
    return inZone(index, name, rel === '' ? [] : rel.split('.'), qtype, hops)
  }
  if (name.endsWith('.in-addr.arpa') || name.endsWith('.ip6.arpa')) {
    const ip = reverseNameToIP(name)
    const names = ip === undefined ? undefined : index.reverse.get(ip)
    if (names === undefined) return { kind: 'forward' }
    if (qtype !== TYPE.PTR && qtype !== TYPE.ANY) return noData(index, name.endsWith('.ip6.arpa') ? 'ip6.arpa' : 'in-addr.arpa')
    return answer(names.map(n => ({ name, ttl: index.ttl, type: 'PTR', data: n })))
  }
  return { kind: 'forward' }
}

function answer (answers: DnsRecord[], additionals: DnsRecord[] = []): Resolution {
  return { kind: 'answer', rcode: 0, answers, authorities: [], additionals }
}

function noData (index: ClusterIndex, soaOwner?: string): Resolution {
  return { kind: 'answer', rcode: 0, answers: [], authorities: [index.soa(soaOwner)], additionals: [] }
}

function nxDomain (index: ClusterIndex): Resolution {
  return { kind: 'answer', rcode: 3, answers: [], authorities: [index.soa()], additionals: [] }
}

/** `labels` are the name's labels left of the zone, leftmost first. */
function inZone (index: ClusterIndex, name: string, labels: string[], qtype: number, hops: number): Resolution {
  const n = labels.length
  const last = labels[n - 1]
  const ttl = index.ttl
  if (n === 0) {
    const soa = index.soa()
    const ns: DnsRecord = { name, ttl, type: 'NS', data: `ns.dns.${index.zone}` }
    const glue = addressRecords(`ns.dns.${index.zone}`, [index.nameserverIP], TYPE.ANY, ttl)
    if (qtype === TYPE.SOA) return answer([soa])
    if (qtype === TYPE.NS) return answer([ns], glue)
    if (qtype === TYPE.ANY) return answer([soa, ns], glue)
    return noData(index)
  }
  if (n === 1 && last === 'dns-version') {
    return qtype === TYPE.TXT || qtype === TYPE.ANY ? answer([{ name, ttl, type: 'TXT', data: [SCHEMA_VERSION] }]) : noData(index)
  }
  if (last === 'dns') {
    if (n === 1) return noData(index)
    if (n === 2 && labels[0] === 'ns') {
      const records = addressRecords(name, [index.nameserverIP], qtype, ttl)
      return records.length > 0 ? answer(records) : noData(index)
    }
    return nxDomain(index)
  }
  if (last === 'svc') return svcName(index, name, labels, qtype, hops)
  if (last === 'pod') return podName(index, name, labels, qtype)
  return nxDomain(index)
}

function svcName (index: ClusterIndex, name: string, labels: string[], qtype: number, hops: number): Resolution {
  const n = labels.length
  if (n === 1) return noData(index)
  const ns = labels[n - 2] as string
  if (n === 2) return index.namespaces.has(ns) ? noData(index) : nxDomain(index)
  const entry = index.services.get(`${ns}/${labels[n - 3] as string}`)
  if (entry === undefined) return nxDomain(index)
  const fqdn = `${entry.service.name}.${ns}.svc.${index.zone}`
  if (n === 3) return serviceRecords(index, entry, name, fqdn, qtype, hops)
  const first = labels[0] as string
  if (n === 4 && !first.startsWith('_')) return endpointRecords(index, entry, name, first, qtype)
  if (n === 4) {
    // `_tcp.<svc>…`: an empty non-terminal when a named port uses that protocol.
    const proto = first.slice(1)
    return srvPorts(entry, undefined, proto).length > 0 ? noData(index) : nxDomain(index)
  }
  if (n === 5 && first.startsWith('_') && (labels[1] as string).startsWith('_')) {
    const ports = srvPorts(entry, first.slice(1), (labels[1] as string).slice(1))
    if (ports.length === 0) return nxDomain(index)
    if (qtype !== TYPE.SRV && qtype !== TYPE.ANY) return noData(index)
    return srv(index, entry, name, fqdn, ports)
  }
  return nxDomain(index)
}

interface SrvPort { name: string, protocol: string, port: number }

/** Named ports matching `portName` (any when undefined) and protocol; endpoint ports for headless services. */
function srvPorts (entry: ServiceEntry, portName: string | undefined, protocol: string | undefined): SrvPort[] {
  const { service } = entry
  if (service.type === 'ExternalName') return []
  const all: SrvPort[] = service.headless
    ? entry.endpoints.flatMap(ep => ep.ready ? ep.ports.map(p => ({ name: p.name, protocol: p.protocol, port: p.port })) : [])
    : service.ports.map(p => ({ name: p.name, protocol: p.protocol, port: p.port }))
  const seen = new Set<string>()
  return all.filter(p => {
    if (portName !== undefined && p.name.toLowerCase() !== portName) return false
    if (protocol !== undefined && (p.name === '' || p.protocol.toLowerCase() !== protocol)) return false
    const key = `${p.name}/${p.protocol}/${p.port}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

function srv (index: ClusterIndex, entry: ServiceEntry, name: string, fqdn: string, ports: SrvPort[]): Resolution {
  const ttl = index.ttl
  const answers: DnsRecord[] = []
  const additionals: DnsRecord[] = []
  const targets = new Set<string>()
  if (entry.service.headless) {
    for (const ep of entry.endpoints) {
      if (!ep.ready) continue
      const target = `${endpointLabel(ep.hostname, ep.ip)}.${fqdn}`
      for (const p of ports) {
        const id = `${target}/${p.port}`
        if (!targets.has(id) && ep.ports.some(q => q.name === p.name && q.protocol === p.protocol && q.port === p.port)) {
          targets.add(id)
          answers.push({ name, ttl, type: 'SRV', data: { priority: 0, weight: 0, port: p.port, target } })
        }
      }
      if (!targets.has(`${target}@${ep.ip}`) && answers.some(a => a.type === 'SRV' && a.data.target === target)) {
        targets.add(`${target}@${ep.ip}`)
        additionals.push(...addressRecords(target, [ep.ip], TYPE.ANY, ttl))
      }
    }
  } else {
    for (const p of ports) answers.push({ name, ttl, type: 'SRV', data: { priority: 0, weight: 0, port: p.port, target: fqdn } })
    additionals.push(...addressRecords(fqdn, entry.service.clusterIPs, TYPE.ANY, ttl))
  }
  // Equal shares, as CoreDNS does: 100 split over the records.
  const weight = Math.max(1, Math.floor(100 / Math.max(1, answers.length)))
  for (const a of answers) if (a.type === 'SRV') a.data.weight = weight
  return answers.length > 0 ? answer(answers, additionals) : noData(index)
}

function serviceRecords (index: ClusterIndex, entry: ServiceEntry, name: string, fqdn: string, qtype: number, hops: number): Resolution {
  const { service } = entry
  const ttl = index.ttl
  if (service.type === 'ExternalName') {
    const target = (service.externalName ?? '').replace(/\.$/, '').toLowerCase()
    if (target === '') return noData(index)
    const cname: DnsRecord = { name, ttl, type: 'CNAME', data: target }
    if (qtype === TYPE.CNAME) return answer([cname])
    if (hops >= MAX_CNAME_HOPS) return answer([cname])
    const next = resolveHops(index, target, qtype, hops + 1)
    if (next.kind === 'forward') return { kind: 'answer', rcode: 0, answers: [cname], authorities: [], additionals: [], chase: { name: target, type: qtype } }
    return { ...next, answers: [cname, ...next.answers] }
  }
  if (qtype === TYPE.SRV) return srv(index, entry, name, fqdn, srvPorts(entry, undefined, undefined))
  const ips = service.headless ? readyAddresses(entry) : service.clusterIPs
  const records = addressRecords(name, ips, qtype, ttl)
  return records.length > 0 ? answer(records) : noData(index)
}

function endpointRecords (index: ClusterIndex, entry: ServiceEntry, name: string, label: string, qtype: number): Resolution {
  // Only headless services publish per-endpoint names (the DNS spec; CoreDNS goes further).
  if (!entry.service.headless) return nxDomain(index)
  const ips = entry.endpoints.filter(ep => ep.ready && endpointLabel(ep.hostname, ep.ip) === label).map(ep => ep.ip)
  if (ips.length === 0) return nxDomain(index)
  const records = addressRecords(name, ips, qtype, index.ttl)
  return records.length > 0 ? answer(records) : noData(index)
}

function podName (index: ClusterIndex, name: string, labels: string[], qtype: number): Resolution {
  // `pods insecure` as upstream's Corefile: any well-formed dashed address answers.
  if (labels.length <= 2) return noData(index)
  if (labels.length !== 3) return nxDomain(index)
  const dashed = labels[0] as string
  const v4 = dashed.replace(/-/g, '.')
  const ip = isIPv4(v4) ? v4 : isIPv6(dashed.replace(/-/g, ':')) ? dashed.replace(/-/g, ':') : undefined
  if (ip === undefined) return nxDomain(index)
  const records = addressRecords(name, [ip], qtype, index.ttl)
  return records.length > 0 ? answer(records) : noData(index)
}

function readyAddresses (entry: ServiceEntry): string[] {
  const seen = new Set<string>()
  for (const ep of entry.endpoints) if (ep.ready) seen.add(ep.ip)
  return [...seen]
}

/** A/AAAA records of `ips` that match `qtype` (both for ANY). */
function addressRecords (name: string, ips: readonly string[], qtype: number, ttl: number): DnsRecord[] {
  const out: DnsRecord[] = []
  for (const ip of ips) {
    if (isIPv4(ip) && (qtype === TYPE.A || qtype === TYPE.ANY)) out.push({ name, ttl, type: 'A', data: ip })
    else if (isIPv6(ip) && (qtype === TYPE.AAAA || qtype === TYPE.ANY)) out.push({ name, ttl, type: 'AAAA', data: ip })
  }
  return out
}
