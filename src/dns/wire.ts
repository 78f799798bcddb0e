/**
 * The DNS wire format, as much as this server needs: a validating query
 * parser that allocates nothing but the cache key, a record walker for
 * upstream replies, and an encoder with name compression for the records the
 * cluster zone produces. dns-packet stays in tests and tools; the hot path
 * never decodes a whole message.
 */
import { isIPv4, isIPv6 } from 'node:net'

export const TYPE = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, HTTPS: 65, ANY: 255
} as const

export const CLASS_IN = 1
export const CLASS_ANY = 255

export const RCODE = {
  NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16
} as const

/** Flag bits of header byte 2 (QR, opcode, AA, TC, RD) and byte 3 (RA, Z, AD, CD, rcode). */
export const FLAG2_QR = 0x80
export const FLAG2_AA = 0x04
export const FLAG2_TC = 0x02
export const FLAG2_RD = 0x01
export const FLAG3_RA = 0x80

export const HEADER_BYTES = 12
/** Classic DNS UDP limit when the client sends no EDNS. */
export const UDP_PLAIN_MAX = 512
/** What we advertise and cap EDNS answers at: the DNS flag day 2020 value (no IP fragmentation). */
export const EDNS_UDP_SIZE = 1232
const MAX_NAME_BYTES = 255

/** A resource record as the resolver produces it; names are absolute, without the trailing dot. */
export type DnsRecord =
  | { name: string, ttl: number, type: 'A' | 'AAAA', data: string }
  | { name: string, ttl: number, type: 'CNAME' | 'PTR' | 'NS', data: string }
  | { name: string, ttl: number, type: 'SRV', data: { priority: number, weight: number, port: number, target: string } }
  | { name: string, ttl: number, type: 'TXT', data: string[] }
  | { name: string, ttl: number, type: 'SOA', data: SoaData }

export interface SoaData {
  mname: string
  rname: string
  serial: number
  refresh: number
  retry: number
  expire: number
  minimum: number
}

export interface Message {
  id: number
  /** Header bytes 2 and 3 (QR, opcode, AA, TC, RD, RA, AD, CD); the rcode's low 4 bits are taken from `rcode`. */
  flags: number
  rcode: number
  /** `wire`, when given, is written as the name bytes (a query's own name, escapes and all). */
  question?: { name: string, type: number, class: number, wire?: Buffer }
  answers?: readonly DnsRecord[]
  authorities?: readonly DnsRecord[]
  additionals?: readonly DnsRecord[]
  /** Appends an OPT record advertising this UDP size. */
  ednsUdpSize?: number
}

const TYPE_CODE: Record<DnsRecord['type'], number> = {
  A: TYPE.A, AAAA: TYPE.AAAA, CNAME: TYPE.CNAME, PTR: TYPE.PTR, NS: TYPE.NS, SRV: TYPE.SRV, TXT: TYPE.TXT, SOA: TYPE.SOA
}

/** Writes messages with name compression (suffix table keyed by lowercased name). */
class Writer {
  buf: Buffer
  pos = 0
  readonly #names = new Map<string, number>()

  constructor (size = 512) {
    this.buf = Buffer.alloc(size)
  }

  #room (n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  u8 (v: number): void { this.#room(1); this.buf[this.pos++] = v }
  u16 (v: number): void { this.#room(2); this.buf.writeUInt16BE(v, this.pos); this.pos += 2 }
  u32 (v: number): void { this.#room(4); this.buf.writeUInt32BE(v >>> 0, this.pos); this.pos += 4 }
  bytes (b: Uint8Array): void { this.#room(b.length); this.buf.set(b, this.pos); this.pos += b.length }

  /** Raw wire name bytes; each suffix becomes a compression target under its presentation form. */
  rawName (wire: Buffer): void {
    for (let i = 0; i < wire.length && wire[i] !== 0; i += 1 + (wire[i] as number)) {
      if (this.pos + i < 0x3fff) this.#names.set(keyToName(wire.toString('latin1', i)), this.pos + i)
    }
    this.bytes(wire)
  }

  name (name: string, compress = true): void {
    const whole = compress ? this.#names.get(name.replace(/\.$/, '').toLowerCase()) : undefined
    if (whole !== undefined) { this.u16(0xc000 | whole); return }
    const labels = name === '' || name === '.' ? [] : name.replace(/\.$/, '').split('.')
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.').toLowerCase()
      const at = compress ? this.#names.get(suffix) : undefined
      if (at !== undefined) { this.u16(0xc000 | at); return }
      if (this.pos < 0x3fff) this.#names.set(suffix, this.pos)
      const label = Buffer.from(labels[i] as string, 'latin1')
      if (label.length === 0 || label.length > 63) throw new RangeError(`bad DNS label in "${name}"`)
      this.u8(label.length)
      this.bytes(label)
    }
    this.u8(0)
  }

  record (r: DnsRecord): void {
    this.name(r.name)
    this.u16(TYPE_CODE[r.type])
    this.u16(CLASS_IN)
    this.u32(r.ttl)
    const lenAt = this.pos
    this.u16(0)
    const start = this.pos
    switch (r.type) {
      case 'A': this.bytes(ipv4Bytes(r.data)); break
      case 'AAAA': this.bytes(ipv6Bytes(r.data)); break
      case 'CNAME': case 'PTR': case 'NS': this.name(r.data); break
      case 'SRV':
        this.u16(r.data.priority); this.u16(r.data.weight); this.u16(r.data.port)
        this.name(r.data.target, false) // RFC 2782: the target is not compressed
        break
      case 'TXT':
        for (const s of r.data) {
          const b = Buffer.from(s, 'utf8')
          if (b.length > 255) throw new RangeError('TXT string longer than 255 bytes')
          this.u8(b.length); this.bytes(b)
        }
        break
      case 'SOA':
        this.name(r.data.mname); this.name(r.data.rname)
        this.u32(r.data.serial); this.u32(r.data.refresh); this.u32(r.data.retry); this.u32(r.data.expire); this.u32(r.data.minimum)
        break
    }
    this.buf.writeUInt16BE(this.pos - start, lenAt)
  }

  done (): Buffer {
    return this.buf.subarray(0, this.pos)
  }
}

/** Encodes a whole message; OPT (when asked for) goes last so it can be stripped or added by slicing. */
export function encodeMessage (m: Message): Buffer {
  const w = new Writer()
  const an = m.answers ?? []
  const ns = m.authorities ?? []
  const ar = m.additionals ?? []
  w.u16(m.id)
  w.u16((m.flags & 0xfff0) | (m.rcode & 0x0f))
  w.u16(m.question === undefined ? 0 : 1)
  w.u16(an.length)
  w.u16(ns.length)
  w.u16(ar.length + (m.ednsUdpSize === undefined ? 0 : 1))
  if (m.question !== undefined) {
    if (m.question.wire !== undefined) w.rawName(m.question.wire)
    else w.name(m.question.name)
    w.u16(m.question.type)
    w.u16(m.question.class)
  }
  for (const r of an) w.record(r)
  for (const r of ns) w.record(r)
  for (const r of ar) w.record(r)
  if (m.ednsUdpSize !== undefined) w.bytes(optRecord(m.ednsUdpSize, m.rcode))
  return Buffer.from(w.done())
}

/** An OPT pseudo-record: root name, our UDP size, the rcode's upper 8 bits, version 0, no options. */
export function optRecord (udpSize: number, rcode = 0): Buffer {
  const b = Buffer.alloc(11)
  b.writeUInt16BE(TYPE.OPT, 1)
  b.writeUInt16BE(udpSize, 3)
  b[5] = (rcode >> 4) & 0xff
  return b
}

function ipv4Bytes (ip: string): Uint8Array {
  if (!isIPv4(ip)) throw new RangeError(`not an IPv4 address: ${ip}`)
  return Uint8Array.from(ip.split('.').map(Number))
}

/** 16 bytes of an IPv6 address (RFC 4291 text forms, including an embedded IPv4 tail). */
export function ipv6Bytes (ip: string): Uint8Array {
  if (!isIPv6(ip)) throw new RangeError(`not an IPv6 address: ${ip}`)
  let text = ip.replace(/%.*$/, '')
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4 !== null) {
    const b = ipv4Bytes(v4[1] as string)
    text = text.slice(0, -(v4[1] as string).length) + ((b[0] as number) << 8 | (b[1] as number)).toString(16) + ':' + ((b[2] as number) << 8 | (b[3] as number)).toString(16)
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t]
  const out = new Uint8Array(16)
  groups.forEach((g, i) => { const v = parseInt(g, 16); out[2 * i] = v >> 8; out[2 * i + 1] = v & 0xff })
  return out
}

/** Canonical (RFC 5952) text of 16 address bytes. */
export function ipv6Text (b: Uint8Array): string {
  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] as number) << 8) | (b[i + 1] as number))
  let bestAt = -1; let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) { bestAt = i; bestLen = j - i }
    i = j
  }
  const hex = groups.map(g => g.toString(16))
  if (bestAt < 0) return hex.join(':')
  return hex.slice(0, bestAt).join(':') + '::' + hex.slice(bestAt + bestLen).join(':')
}

/** Results of `QueryParser.parse`. */
export const PARSE_OK = 0
/** Shorter than a header, or a response: never answered (no reflection, no loops). */
export const PARSE_DROP = 1
export const PARSE_FORMERR = 2
export const PARSE_NOTIMP = 3
export const PARSE_BADVERS = 4

/**
 * A validating query parser with mutable result fields, so the UDP hot path
 * allocates only the cache key string. Accepts exactly one question, any
 * records in the other sections (skipped after checking their bounds), and at
 * most one OPT record in the additional section.
 */
export class QueryParser {
  /** Lowercased wire-format question name (length-prefixed labels, terminating zero), latin1: the cache key. */
  key = ''
  qtype = 0
  qclass = 0
  /** Offset just past the question section. */
  qEnd = 0
  /** Offset of the first byte of the question name's terminating zero. */
  nameEnd = 0
  edns = false
  /** Largest UDP reply the client accepts: 512 without EDNS, its advertised size (≥ 512) with. */
  udpSize = UDP_PLAIN_MAX
  readonly #scratch = Buffer.alloc(MAX_NAME_BYTES + 1)

  parse (msg: Buffer): number {
    const len = msg.length
    if (len < HEADER_BYTES) return PARSE_DROP
    const b2 = msg[2] as number
    if ((b2 & FLAG2_QR) !== 0) return PARSE_DROP
    this.edns = false
    this.udpSize = UDP_PLAIN_MAX
    this.key = ''
    if ((b2 & 0x78) !== 0) return PARSE_NOTIMP
    const qd = (msg[4] as number) << 8 | (msg[5] as number)
    if (qd !== 1) return PARSE_FORMERR
    // Question name: labels only (a pointer cannot point anywhere before it).
    let i = HEADER_BYTES
    let upper = false
    for (;;) {
      if (i >= len) return PARSE_FORMERR
      const l = msg[i] as number
      if (l === 0) break
      if (l > 63) return PARSE_FORMERR
      const end = i + 1 + l
      if (end > len || end - HEADER_BYTES >= MAX_NAME_BYTES) return PARSE_FORMERR
      for (let k = i + 1; k < end; k++) {
        const c = msg[k] as number
        if (c >= 0x41 && c <= 0x5a) upper = true
      }
      i = end
    }
    this.nameEnd = i
    if (i + 5 > len) return PARSE_FORMERR
    this.qtype = (msg[i + 1] as number) << 8 | (msg[i + 2] as number)
    this.qclass = (msg[i + 3] as number) << 8 | (msg[i + 4] as number)
    this.qEnd = i + 5
    // Other sections: walk to check bounds; remember the OPT record.
    const an = (msg[6] as number) << 8 | (msg[7] as number)
    const ns = (msg[8] as number) << 8 | (msg[9] as number)
    const ar = (msg[10] as number) << 8 | (msg[11] as number)
    let pos = this.qEnd
    let badVersion = false
    for (let r = 0; r < an + ns + ar; r++) {
      const nameStart = pos
      pos = skipName(msg, pos)
      if (pos < 0 || pos + 10 > len) return PARSE_FORMERR
      const type = msg.readUInt16BE(pos)
      const rdlen = msg.readUInt16BE(pos + 8)
      if (type === TYPE.OPT) {
        // Only one OPT, only in the additional section, only at the root.
        if (r < an + ns || this.edns || pos !== nameStart + 1) return PARSE_FORMERR
        this.edns = true
        this.udpSize = Math.max(UDP_PLAIN_MAX, msg.readUInt16BE(pos + 2))
        if (msg[pos + 5] !== 0) badVersion = true
      }
      pos += 10 + rdlen
      if (pos > len) return PARSE_FORMERR
    }
    if (badVersion) return PARSE_BADVERS
    if (upper) {
      const s = this.#scratch
      for (let k = HEADER_BYTES; k <= i; k++) {
        const c = msg[k] as number
        s[k - HEADER_BYTES] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c
      }
      this.key = s.toString('latin1', 0, i - HEADER_BYTES + 1)
    } else {
      this.key = msg.toString('latin1', HEADER_BYTES, i + 1)
    }
    return PARSE_OK
  }
}

/** Offset after a (possibly compressed) name, or -1 if it runs out of bounds or loops. */
export function skipName (msg: Buffer, pos: number): number {
  const len = msg.length
  for (let hops = 0; hops < 128; hops++) {
    if (pos >= len) return -1
    const l = msg[pos] as number
    if (l === 0) return pos + 1
    if ((l & 0xc0) === 0xc0) return pos + 2 <= len ? pos + 2 : -1
    if ((l & 0xc0) !== 0) return -1
    pos += 1 + l
  }
  return -1
}

/** Presentation form of a wire name key (`\x03foo\x03bar\x00` → `foo.bar`); escapes dots and odd bytes. */
export function keyToName (key: string): string {
  const labels: string[] = []
  let i = 0
  while (i < key.length) {
    const l = key.charCodeAt(i)
    if (l === 0) break
    let label = ''
    for (let k = i + 1; k <= i + l && k < key.length; k++) {
      const c = key.charCodeAt(k)
      if (c === 0x2e || c === 0x5c) label += '\\' + String.fromCharCode(c)
      else if (c <= 0x20 || c >= 0x7f) label += '\\' + String(c).padStart(3, '0')
      else label += String.fromCharCode(c)
    }
    labels.push(label)
    i += 1 + l
  }
  return labels.join('.')
}

/** Wire name key of a presentation name (no escapes: cluster names and tests only). */
export function nameToKey (name: string): string {
  const labels = name.replace(/\.$/, '').toLowerCase().split('.').filter(l => l !== '')
  return labels.map(l => String.fromCharCode(l.length) + l).join('') + '\0'
}

/**
 * A reply carrying only a header, the question (when `qEnd` says where it
 * ends) and our OPT (when the query had EDNS): FORMERR, NOTIMP, SERVFAIL, BADVERS.
 */
export function errorReply (query: Buffer, rcode: number, opts: { qEnd?: number, edns?: boolean } = {}): Buffer {
  const qlen = opts.qEnd !== undefined && opts.qEnd > HEADER_BYTES ? opts.qEnd - HEADER_BYTES : 0
  const opt = opts.edns === true ? optRecord(EDNS_UDP_SIZE, rcode) : undefined
  const out = Buffer.alloc(HEADER_BYTES + qlen + (opt?.length ?? 0))
  out[0] = query[0] as number
  out[1] = query[1] as number
  // Keep opcode and RD; set QR; RA because we forward.
  out[2] = FLAG2_QR | ((query[2] as number) & 0x79)
  out[3] = FLAG3_RA | (rcode & 0x0f)
  if (qlen > 0) {
    out[5] = 1
    query.copy(out, HEADER_BYTES, HEADER_BYTES, opts.qEnd)
  }
  if (opt !== undefined) {
    out[11] = 1
    opt.copy(out, HEADER_BYTES + qlen)
  }
  return out
}

/** Where the TTLs of a reply sit, and the rcode; -1 offsets list on malformed input. */
export interface ReplyLayout {
  rcode: number
  /** Offsets of the 32-bit TTL fields of every non-OPT record. */
  ttlOffsets: number[]
  /** Start and end of an OPT record, if present. */
  optStart: number
  optEnd: number
  /** Start of the additional section. */
  additionalStart: number
  answerCount: number
  /** TTL of the first SOA in the authority section (negative caching), or -1. */
  soaMinimum: number
}

/** Walks a reply (from an upstream) and checks its bounds. Undefined when malformed. */
export function layoutReply (msg: Buffer): ReplyLayout | undefined {
  if (msg.length < HEADER_BYTES) return undefined
  const qd = msg.readUInt16BE(4)
  const an = msg.readUInt16BE(6)
  const ns = msg.readUInt16BE(8)
  const ar = msg.readUInt16BE(10)
  let pos = HEADER_BYTES
  for (let q = 0; q < qd; q++) {
    pos = skipName(msg, pos)
    if (pos < 0 || pos + 4 > msg.length) return undefined
    pos += 4
  }
  const out: ReplyLayout = { rcode: (msg[3] as number) & 0x0f, ttlOffsets: [], optStart: -1, optEnd: -1, additionalStart: -1, answerCount: an, soaMinimum: -1 }
  for (let r = 0; r < an + ns + ar; r++) {
    if (r === an + ns) out.additionalStart = pos
    const start = pos
    pos = skipName(msg, pos)
    if (pos < 0 || pos + 10 > msg.length) return undefined
    const type = msg.readUInt16BE(pos)
    const ttl = msg.readUInt32BE(pos + 4)
    const rdlen = msg.readUInt16BE(pos + 8)
    const rdata = pos + 10
    if (rdata + rdlen > msg.length) return undefined
    if (type === TYPE.OPT) {
      if (out.optStart >= 0) return undefined
      out.optStart = start
      out.optEnd = rdata + rdlen
      out.rcode |= (msg[pos + 4] as number) << 4
    } else {
      out.ttlOffsets.push(pos + 4)
      if (type === TYPE.SOA && r >= an && r < an + ns && out.soaMinimum < 0) {
        // Negative TTL (RFC 2308): min(SOA TTL, SOA MINIMUM).
        const mname = skipName(msg, rdata)
        const rname = mname < 0 ? -1 : skipName(msg, mname)
        if (rname > 0 && rname + 20 <= rdata + rdlen) out.soaMinimum = Math.min(ttl, msg.readUInt32BE(rname + 16))
      }
    }
    pos = rdata + rdlen
  }
  if (out.additionalStart < 0) out.additionalStart = pos
  return out
}
