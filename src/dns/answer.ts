/**
 * Pre-encoded replies. One is built per (name, type) the first time it is
 * asked for; every later query only copies it, patches the ID, the RD bit and
 * the question (the client's letter case), and for forwarded answers ages the
 * TTLs in place. Nothing is decoded or encoded on that path.
 */
import {
  CLASS_IN, EDNS_UDP_SIZE, FLAG2_AA, FLAG2_QR, FLAG2_RD, FLAG2_TC, FLAG3_RA, HEADER_BYTES, encodeMessage, optRecord
} from './wire.ts'
import type { DnsRecord, ReplyLayout } from './wire.ts'

export class PreparedAnswer {
  /** The reply without OPT, ID 0. */
  readonly plain: Buffer
  /** The same with our OPT record appended. */
  readonly edns: Buffer
  readonly rcode: number
  /** `performance.now()` when stored and when it stops being served; Infinity for cluster answers. */
  readonly storedAt: number
  readonly expiresAt: number
  /**
   * When a hit should start a background refresh (forwarded answers): a
   * jittered 80–90 % of the lifetime, so names cached together are not all
   * refetched together. Set to Infinity once a refresh has started.
   */
  refreshAt: number
  readonly #ttlOffsets: Uint32Array | undefined
  readonly #ttls: Uint32Array | undefined
  #truncated: Buffer | undefined
  #truncatedEdns: Buffer | undefined

  private constructor (plain: Buffer, rcode: number, storedAt: number, expiresAt: number, ttlOffsets?: Uint32Array, ttls?: Uint32Array) {
    this.plain = plain
    this.edns = withOpt(plain, rcode)
    this.rcode = rcode
    this.storedAt = storedAt
    this.expiresAt = expiresAt
    const lifetime = expiresAt - storedAt
    this.refreshAt = Number.isFinite(lifetime) && lifetime >= 2000 ? storedAt + lifetime * (0.8 + 0.1 * Math.random()) : Infinity
    this.#ttlOffsets = ttlOffsets
    this.#ttls = ttls
  }

  /** An authoritative cluster answer: static TTLs, valid until the service map changes. */
  static authoritative (name: string, key: string, qtype: number, rcode: number, answers: readonly DnsRecord[], authorities: readonly DnsRecord[], additionals: readonly DnsRecord[]): PreparedAnswer {
    const plain = encodeMessage({
      id: 0,
      flags: (FLAG2_QR | FLAG2_AA) << 8 | FLAG3_RA,
      rcode,
      question: { name, type: qtype, class: CLASS_IN, wire: Buffer.from(key, 'latin1') },
      answers,
      authorities,
      additionals
    })
    return new PreparedAnswer(plain, rcode, 0, Infinity)
  }

  /**
   * A forwarded reply, kept for `lifetimeMs`. The upstream's OPT record is
   * dropped (ours is added per client); if it is not the last record, the
   * whole additional section goes (it is optional data).
   */
  static forwarded (reply: Buffer, layout: ReplyLayout, storedAt: number, lifetimeMs: number): PreparedAnswer {
    let body = reply
    let arDelta = 0
    let offsets = layout.ttlOffsets
    if (layout.optStart >= 0) {
      if (layout.optEnd === reply.length) {
        body = reply.subarray(0, layout.optStart)
        arDelta = 1
      } else {
        body = reply.subarray(0, layout.additionalStart)
        arDelta = reply.readUInt16BE(10)
        offsets = offsets.filter(o => o < layout.additionalStart)
      }
    }
    const plain = Buffer.from(body)
    plain.writeUInt16BE(0, 0)
    plain.writeUInt16BE(plain.readUInt16BE(10) - arDelta, 10)
    // A forwarder's answer: not authoritative, recursion available, complete (we retried over TCP).
    plain[2] = ((plain[2] as number) & ~(FLAG2_AA | FLAG2_TC)) | FLAG2_QR
    plain[3] = ((plain[3] as number) | FLAG3_RA) & 0xff
    const ttlOffsets = Uint32Array.from(offsets)
    const ttls = Uint32Array.from(offsets, o => plain.readUInt32BE(o))
    return new PreparedAnswer(plain, layout.rcode & 0x0f, storedAt, storedAt + lifetimeMs, ttlOffsets, ttls)
  }

  /** Length of the reply a client with this EDNS state would get before truncation. */
  size (edns: boolean): number {
    return edns ? this.edns.length : this.plain.length
  }

  /**
   * The reply to `query` (question ending at `qEnd`, with or without EDNS),
   * truncated to a header and question with TC set when over `maxBytes`.
   */
  write (query: Buffer, qEnd: number, edns: boolean, maxBytes: number, now: number): Buffer {
    let base = edns ? this.edns : this.plain
    let fits = true
    if (base.length > maxBytes) {
      base = this.#truncatedFor(edns)
      fits = false
    }
    const out = Buffer.allocUnsafe(base.length)
    base.copy(out)
    out[0] = query[0] as number
    out[1] = query[1] as number
    out[2] = ((base[2] as number) & ~FLAG2_RD) | ((query[2] as number) & FLAG2_RD)
    query.copy(out, HEADER_BYTES, HEADER_BYTES, qEnd)
    const offsets = this.#ttlOffsets
    if (fits && offsets !== undefined && now > this.storedAt + 1000) {
      const ttls = this.#ttls as Uint32Array
      const age = Math.floor((now - this.storedAt) / 1000)
      for (let i = 0; i < offsets.length; i++) {
        const ttl = (ttls[i] as number) - age
        out.writeUInt32BE(ttl > 0 ? ttl : 0, offsets[i] as number)
      }
    }
    return out
  }

  #truncatedFor (edns: boolean): Buffer {
    const cached = edns ? this.#truncatedEdns : this.#truncated
    if (cached !== undefined) return cached
    // Header + question (+ OPT): the client retries over TCP (RFC 7766).
    let qEnd = HEADER_BYTES
    while ((this.plain[qEnd] as number) !== 0) qEnd += 1 + (this.plain[qEnd] as number)
    qEnd += 5
    const t = Buffer.from(this.plain.subarray(0, qEnd))
    t[2] = (t[2] as number) | FLAG2_TC
    t.writeUInt16BE(0, 6)
    t.writeUInt16BE(0, 8)
    t.writeUInt16BE(0, 10)
    const out = edns ? withOpt(t, this.rcode) : t
    if (edns) this.#truncatedEdns = out
    else this.#truncated = out
    return out
  }
}

function withOpt (plain: Buffer, rcode: number): Buffer {
  const out = Buffer.concat([plain, optRecord(EDNS_UDP_SIZE, rcode)])
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10)
  return out
}

/**
 * Answers keyed by qtype, then by wire name; bounded: when full, the oldest
 * insertions go first (Map order), so a flood of random names cannot grow it.
 */
export class AnswerTable {
  readonly #byType = new Map<number, Map<string, PreparedAnswer>>()
  readonly #max: number
  #size = 0

  constructor (maxEntries: number) {
    this.#max = maxEntries
  }

  get size (): number { return this.#size }

  get (qtype: number, key: string): PreparedAnswer | undefined {
    return this.#byType.get(qtype)?.get(key)
  }

  set (qtype: number, key: string, answer: PreparedAnswer): void {
    let m = this.#byType.get(qtype)
    if (m === undefined) { m = new Map(); this.#byType.set(qtype, m) }
    if (!m.has(key)) {
      if (this.#size >= this.#max) this.#evict(m)
      this.#size++
    }
    m.set(key, answer)
  }

  delete (qtype: number, key: string): void {
    if (this.#byType.get(qtype)?.delete(key) === true) this.#size--
  }

  clear (): void {
    this.#byType.clear()
    this.#size = 0
  }

  /** Removes entries whose key matches. */
  deleteWhere (match: (key: string) => boolean): void {
    for (const m of this.#byType.values()) {
      for (const key of m.keys()) if (match(key)) { m.delete(key); this.#size-- }
    }
  }

  #evict (preferred: Map<string, PreparedAnswer>): void {
    // Drop a tenth of the oldest entries of this type (or of any type) at once: amortised O(1).
    const batch = Math.max(1, Math.floor(this.#max / 10))
    const maps = [preferred, ...this.#byType.values()]
    let dropped = 0
    for (const m of maps) {
      for (const key of m.keys()) {
        if (dropped >= batch) return
        m.delete(key)
        this.#size--
        dropped++
      }
    }
  }
}
