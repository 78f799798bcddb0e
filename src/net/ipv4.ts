/** IPv4 addresses as unsigned 32-bit numbers, for masks, ranges and wire formats. */

/** `10.0.0.1` → 167772161; undefined when it is not a dotted IPv4 address. */
export function ipv4ToNumber (ip: string): number | undefined {
  const parts = ip.split('.')
  if (parts.length !== 4) return undefined
  let n = 0
  for (const p of parts) {
    const v = Number(p)
    if (!Number.isInteger(v) || v < 0 || v > 255 || p === '') return undefined
    n = n * 256 + v
  }
  return n
}

/** `10.0.0.1:8080` → host and port; undefined for anything else (a bad address, port 0 or over 65535). */
export function parseIpv4Endpoint (text: string): { host: string, port: number } | undefined {
  const colon = text.lastIndexOf(':')
  const host = text.slice(0, colon)
  const portText = text.slice(colon + 1)
  const port = Number(portText)
  if (colon < 0 || !/^\d{1,5}$/.test(portText) || port < 1 || port > 65_535 || ipv4ToNumber(host) === undefined) return undefined
  return { host, port }
}

/** 167772161 → `10.0.0.1`. */
export function numberToIpv4 (n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

/** The network mask of a prefix length, as a number: 24 → 0xffffff00; 0 → 0. */
export function prefixMask (prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
}

/** Whether `ip` is inside `cidr` (`10.244.0.0/16`); false for anything that is not IPv4. */
export function inCidr (ip: string, cidr: string): boolean {
  const a = ipv4ToNumber(ip)
  const c = cidrParts(cidr)
  return a !== undefined && c !== undefined && ((a & prefixMask(c.prefix)) >>> 0) === c.network
}

/** An IPv4 CIDR as its network number and prefix length; undefined for anything else. */
function cidrParts (cidr: string): { network: number, prefix: number } | undefined {
  const [base, bits] = cidr.split('/')
  const prefix = Number(bits)
  const n = ipv4ToNumber(base ?? '')
  if (n === undefined || bits === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) return undefined
  return { network: (n & prefixMask(prefix)) >>> 0, prefix }
}

/** Whether two IPv4 CIDRs share any address; false when either is not one. */
export function cidrsOverlap (a: string, b: string): boolean {
  const x = cidrParts(a)
  const y = cidrParts(b)
  if (x === undefined || y === undefined) return false
  const mask = prefixMask(Math.min(x.prefix, y.prefix))
  return ((x.network & mask) >>> 0) === ((y.network & mask) >>> 0)
}

/** Whether every address of `inner` is in `outer` (IPv4 CIDRs). */
export function cidrWithin (inner: string, outer: string): boolean {
  const x = cidrParts(inner)
  const y = cidrParts(outer)
  return x !== undefined && y !== undefined && x.prefix >= y.prefix && ((x.network & prefixMask(y.prefix)) >>> 0) === y.network
}
