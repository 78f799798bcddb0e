/**
 * Which clients count as "on this node" for the services on the bridge
 * address (DNS, SOCKS5). 169.254.96.16 is link-local, but a host on the node's
 * LAN can still route it via the node, and Linux accepts the packet on any
 * interface. Such a host is not the node's and must not use its resolver or
 * reach other nodes through its SOCKS5 proxy.
 *
 * A source is local when it is one of the host's own addresses (host-network
 * pods, edgecore's usual case), or when the host routes it through an
 * interface that carries no default route: pod bridges (docker0, cni0) and
 * per-pod veths. A source reached through an uplink (an interface with a
 * default route) is a LAN or WAN host. A host with no default route cannot
 * tell the two apart, and every source is local. IPv6 sources other than the
 * host's own are accepted: the bridge address is IPv4 unless configured
 * otherwise, and the IPv6 table is not read.
 */
import { readFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import { ipv4ToNumber } from './ipv4.ts'

/** An IPv4 route of the main table: destination and mask as 32-bit numbers. */
export interface Route { destination: number, mask: number, device: string }

/** What the host looks like now: its addresses and IPv4 routes. */
export interface HostView { addresses: () => string[], routes: () => Route[] }

/** Caps the cache of verdicts: a flood of spoofed sources costs a clear, not memory. */
const MAX_CACHED = 4096

export class LocalSources {
  readonly #view: HostView
  readonly #refreshMs: number
  #own = new Set<string>()
  #routes: Route[] = []
  #uplinks = new Set<string>()
  #readAt = -Infinity
  readonly #verdicts = new Map<string, boolean>()

  /** `refreshMs`: how old the view may get; pod bridges and addresses come and go. */
  constructor (view: HostView = procView, refreshMs = 5000) {
    this.#view = view
    this.#refreshMs = refreshMs
  }

  isLocal (address: string): boolean {
    const now = performance.now()
    if (now - this.#readAt > this.#refreshMs) this.#read(now)
    let verdict = this.#verdicts.get(address)
    if (verdict === undefined) {
      verdict = this.#judge(address)
      if (this.#verdicts.size >= MAX_CACHED) this.#verdicts.clear()
      this.#verdicts.set(address, verdict)
    }
    return verdict
  }

  #read (now: number): void {
    this.#readAt = now
    this.#verdicts.clear()
    try {
      this.#own = new Set(this.#view.addresses())
      this.#routes = this.#view.routes()
    } catch {
      // Unreadable (no /proc): keep the last view rather than refuse the node's own pods.
    }
    this.#uplinks = new Set(this.#routes.filter(r => r.mask === 0).map(r => r.device))
  }

  #judge (address: string): boolean {
    const ip = address.startsWith('::ffff:') ? address.slice(7) : address
    if (this.#own.has(ip) || ip.startsWith('127.')) return true
    const n = ipv4ToNumber(ip)
    if (n === undefined) return true
    if (this.#uplinks.size === 0) return true
    let best: Route | undefined
    for (const r of this.#routes) {
      if (((n & r.mask) >>> 0) === r.destination && (best === undefined || popcount(r.mask) > popcount(best.mask))) best = r
    }
    return best !== undefined && !this.#uplinks.has(best.device)
  }
}

/** The running host: os.networkInterfaces() and /proc/net/route. */
export const procView: HostView = {
  addresses: () => Object.values(networkInterfaces()).flatMap(list => (list ?? []).map(a => a.address)),
  routes: () => parseProcRoutes(readFileSync('/proc/net/route', 'utf8'))
}

/** /proc/net/route: hex, host byte order (little-endian on every platform we ship). */
export function parseProcRoutes (text: string): Route[] {
  const routes: Route[] = []
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/)
    if (cols.length < 8) continue
    const destination = swap32(parseInt(cols[1] as string, 16))
    const mask = swap32(parseInt(cols[7] as string, 16))
    if (Number.isNaN(destination) || Number.isNaN(mask)) continue
    routes.push({ device: cols[0] as string, destination, mask })
  }
  return routes
}

function swap32 (n: number): number {
  return (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | (n >>> 24)) >>> 0
}

function popcount (mask: number): number {
  let c = 0
  for (let m = mask; m !== 0; m = (m << 1) >>> 0) c++
  return c
}
