/**
 * Forwarding to upstream resolvers: the host's (from its resolv.conf, never
 * this server itself) or, in cacheDNS mode, the cluster DNS. One exchange
 * tries the servers in turn (starting with the last one that worked), each
 * with a timeout, and retries over TCP when a UDP reply is truncated.
 * Caching lives in the handler; this module only exchanges messages.
 */
import { createSocket } from 'node:dgram'
import type { Socket as UdpSocket, RemoteInfo } from 'node:dgram'
import { connect } from 'node:net'
import { readFile, stat } from 'node:fs/promises'
import { isIPv4, isIPv6 } from 'node:net'
import { randomInt } from 'node:crypto'
import type { Logger } from '../observability/logger.ts'
import type { ServiceEntry, ServiceKey } from '../servicemap/types.ts'
import type { DnsMetrics } from './metrics.ts'
import { DnsConfigError, DnsNoUpstreamError, DnsUpstreamError, DnsUpstreamTimeoutError } from './errors.ts'
import { EDNS_UDP_SIZE, FLAG2_QR, FLAG2_RD, FLAG2_TC, HEADER_BYTES, RCODE, layoutReply, nameToKey, optRecord, skipName } from './wire.ts'
import { byCodeUnits } from '../order.ts'

export interface UpstreamServer {
  address: string
  port: number
  /** `ip:port` (`[ip]:port` for IPv6): the metric label and log field. */
  label: string
}

export function upstreamServer (address: string, port = 53): UpstreamServer {
  return { address, port, label: isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}` }
}

/** `ip`, `ip:port` or `[ipv6]:port`, as `cacheDNS.upstreamServers` entries are written. */
export function parseHostPort (text: string): UpstreamServer {
  const s = text.trim()
  if (isIPv4(s) || isIPv6(s)) return upstreamServer(s)
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s)
  if (m !== null && (isIPv4(m[1] as string) || isIPv6(m[1] as string)) && Number(m[2]) >= 1 && Number(m[2]) <= 65535) {
    return upstreamServer(m[1] as string, Number(m[2]))
  }
  throw new DnsConfigError(`upstream server "${text}" is not ip or ip:port`)
}

/** The `nameserver` entries of a resolv.conf text, in order, without duplicates. */
export function parseResolvConf (text: string, port = 53): UpstreamServer[] {
  const out: UpstreamServer[] = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim()
    const m = /^nameserver\s+(\S+)/.exec(line)
    if (m === null) continue
    const addr = (m[1] as string).replace(/%.*$/, '')
    if ((isIPv4(addr) || isIPv6(addr)) && !out.some(s => s.address === addr)) out.push(upstreamServer(addr, port))
  }
  return out
}

/**
 * The cluster DNS ClusterIPs (cacheDNS autodetection, as upstream EdgeMesh):
 * kube-system/coredns, kube-system/kube-dns, then every kube-system service
 * labelled `k8s-app=kube-dns`; headless ones skipped; order kept, no duplicates.
 * The port is the service's TCP DNS port (53 when there is none).
 */
export function detectClusterDns (snapshot: ReadonlyMap<ServiceKey, ServiceEntry>): UpstreamServer[] {
  const picked: ServiceEntry[] = []
  for (const key of ['kube-system/coredns', 'kube-system/kube-dns']) {
    const e = snapshot.get(key)
    if (e !== undefined) picked.push(e)
  }
  const labelled = [...snapshot.values()]
    .filter(e => e.service.namespace === 'kube-system' && e.service.labels['k8s-app'] === 'kube-dns' && !picked.includes(e))
    .sort((a, b) => byCodeUnits(a.service.name, b.service.name))
  const out: UpstreamServer[] = []
  for (const { service } of [...picked, ...labelled]) {
    if (service.headless || service.type === 'ExternalName') continue
    const port = service.ports.find(p => p.protocol === 'TCP' && (p.name === 'dns-tcp' || p.port === 53))?.port ??
      service.ports.find(p => p.protocol === 'TCP')?.port ?? 53
    for (const ip of service.clusterIPs) {
      if (!out.some(s => s.address === ip && s.port === port)) out.push(upstreamServer(ip, port))
    }
  }
  return out
}

export interface ForwarderDeps {
  logger: Logger
  metrics: DnsMetrics
}

export interface ForwarderInit {
  /** Host resolv.conf to take servers from; undefined in cacheDNS mode (servers are set by the caller). */
  resolvConfPath?: string
  /** Port the resolv.conf servers are asked on. @default 53 */
  resolvConfPort?: number
  /** Addresses that are this server: never used as upstreams. */
  self: readonly UpstreamServer[]
  /** TCP for every exchange (cacheDNS: the cluster DNS is reached through the tunnel). @default false */
  forceTcp?: boolean
  /** Per-attempt timeout. @default 2000 */
  attemptTimeoutMs?: number
  /** Total time for one question across attempts. @default 4000 */
  totalTimeoutMs?: number
  /** How often the resolv.conf is checked for changes. @default 5000 */
  reloadIntervalMs?: number
}

interface Pending {
  resolve: (reply: Buffer) => void
  server: UpstreamServer
  question: Buffer
}

/** Reasons an attempt failed, for metrics. */
type Failure = 'timeout' | 'servfail' | 'refused' | 'network' | 'malformed'

export class Forwarder {
  readonly #log: Logger
  readonly #metrics: DnsMetrics
  readonly #init: Required<Omit<ForwarderInit, 'resolvConfPath'>> & { resolvConfPath?: string }
  #servers: UpstreamServer[] = []
  #preferred = 0
  #udp4: UdpSocket | undefined
  #udp6: UdpSocket | undefined
  readonly #pending = new Map<number, Pending>()
  #timer: NodeJS.Timeout | undefined
  #resolvMtime = -1
  #stopped = true

  constructor (deps: ForwarderDeps, init: ForwarderInit) {
    this.#log = deps.logger
    this.#metrics = deps.metrics
    this.#init = {
      forceTcp: false,
      resolvConfPort: 53,
      attemptTimeoutMs: 2000,
      totalTimeoutMs: 4000,
      reloadIntervalMs: 5000,
      ...init
    }
  }

  get servers (): readonly UpstreamServer[] {
    return this.#servers
  }

  async start (): Promise<void> {
    this.#stopped = false
    if (this.#init.resolvConfPath !== undefined) {
      await this.#reload()
      this.#timer = setInterval(() => { this.#reload().catch((err: Error) => this.#log.debug('resolv.conf reload failed', { err: err.message })) }, this.#init.reloadIntervalMs)
      this.#timer.unref()
    }
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    this.#timer = undefined
    for (const p of this.#pending.values()) p.resolve(Buffer.alloc(0))
    this.#pending.clear()
    await Promise.all([this.#udp4, this.#udp6].map(async s => await new Promise<void>(resolve => {
      if (s === undefined) { resolve(); return }
      s.close(() => resolve())
    })))
    this.#udp4 = undefined
    this.#udp6 = undefined
  }

  /** Replaces the server list (cacheDNS autodetection, tests); servers that are this server are left out. */
  setServers (servers: readonly UpstreamServer[], why: string): void {
    const usable = servers.filter(s => !this.#init.self.some(me => me.address === s.address && me.port === s.port))
    const changed = usable.map(s => s.label).join(',') !== this.#servers.map(s => s.label).join(',')
    this.#servers = usable
    this.#preferred = 0
    this.#metrics.upstreamServers(usable.length)
    if (!changed) return
    if (usable.length === 0) {
      this.#log.error('no usable upstream DNS server: forwarded names will fail with SERVFAIL', { source: why, skipped: servers.map(s => s.label) })
    } else {
      this.#log.info('upstream DNS servers', { servers: usable.map(s => s.label), source: why })
    }
  }

  async #reload (): Promise<void> {
    const path = this.#init.resolvConfPath as string
    let mtime: number
    try {
      mtime = (await stat(path)).mtimeMs
    } catch (err) {
      if (this.#resolvMtime !== -2) {
        this.#resolvMtime = -2
        this.setServers([], `${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
      }
      return
    }
    if (mtime === this.#resolvMtime) return
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      this.setServers([], `${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
      return
    }
    this.#resolvMtime = mtime
    this.setServers(parseResolvConf(text, this.#init.resolvConfPort), path)
  }

  /**
   * Asks the upstreams one question; resolves with their full reply (after a
   * TCP retry when truncated). Throws DnsNoUpstreamError when there is no
   * server, DnsUpstreamTimeoutError when none answered in time.
   */
  async exchange (name: string, qtype: number, qclass: number): Promise<Buffer> {
    const servers = this.#servers
    if (servers.length === 0) throw new DnsNoUpstreamError(this.#init.resolvConfPath !== undefined ? `${this.#init.resolvConfPath} names no other server` : 'none configured or detected')
    const question = questionBytes(name, qtype, qclass)
    const deadline = performance.now() + this.#init.totalTimeoutMs
    const attempts = Math.max(2, servers.length)
    let last: Buffer | undefined
    let lastError: Error | undefined
    for (let a = 0; a < attempts; a++) {
      const index = (this.#preferred + a) % servers.length
      const server = servers[index] as UpstreamServer
      const left = deadline - performance.now()
      if (left <= 0) break
      const timeout = Math.min(this.#init.attemptTimeoutMs, left)
      try {
        let reply = this.#init.forceTcp ? await this.#tcp(server, question, timeout) : await this.#udp(server, question, timeout)
        if (reply.length === 0) break // stopping
        if (((reply[2] as number) & FLAG2_TC) !== 0 && !this.#init.forceTcp) reply = await this.#tcp(server, question, Math.max(1, deadline - performance.now()))
        if (layoutReply(reply) === undefined) {
          this.#metrics.upstreamError(server.label, 'malformed')
          continue
        }
        const rcode = (reply[3] as number) & 0x0f
        if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) {
          this.#metrics.upstreamError(server.label, rcode === RCODE.SERVFAIL ? 'servfail' : 'refused')
          last = reply
          continue
        }
        this.#preferred = index
        return reply
      } catch (err) {
        lastError = err as Error
        this.#metrics.upstreamError(server.label, failureOf(err))
        this.#log.debug('upstream attempt failed', { upstream: server.label, err: (err as Error).message })
      }
    }
    if (last !== undefined) return last
    throw lastError ?? new DnsUpstreamTimeoutError(servers.map(s => s.label).join(','), this.#init.forceTcp ? 'tcp' : 'udp', this.#init.totalTimeoutMs)
  }

  #socket (v6: boolean): UdpSocket {
    const existing = v6 ? this.#udp6 : this.#udp4
    if (existing !== undefined) return existing
    const s = createSocket({ type: v6 ? 'udp6' : 'udp4' })
    s.on('message', (msg, rinfo) => this.#onReply(msg, rinfo))
    s.on('error', err => this.#log.warn('upstream socket error', { err }))
    s.bind(0)
    s.unref()
    if (v6) this.#udp6 = s
    else this.#udp4 = s
    return s
  }

  #onReply (msg: Buffer, rinfo: RemoteInfo): void {
    if (msg.length < HEADER_BYTES || ((msg[2] as number) & FLAG2_QR) === 0) return
    const p = this.#pending.get(msg.readUInt16BE(0))
    // Only the server we asked, answering our question (no blind spoofing with a guessed ID).
    if (p === undefined || rinfo.address !== p.server.address || rinfo.port !== p.server.port) return
    if (!sameQuestion(msg, p.question)) return
    this.#pending.delete(msg.readUInt16BE(0))
    p.resolve(msg)
  }

  async #udp (server: UpstreamServer, question: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.#stopped) return Buffer.alloc(0)
    if (this.#pending.size >= 4096) throw new DnsUpstreamError(server.label, 'too many queries in flight')
    let id = randomInt(0, 65536)
    for (let i = 0; this.#pending.has(id) && i < 65536; i++) id = (id + 1) & 0xffff
    const query = queryMessage(id, question)
    this.#metrics.upstreamRequest(server.label, 'udp')
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new DnsUpstreamTimeoutError(server.label, 'udp', timeoutMs))
      }, timeoutMs)
      this.#pending.set(id, { server, question, resolve: (reply) => { clearTimeout(timer); resolve(reply) } })
      this.#socket(isIPv6(server.address)).send(query, server.port, server.address, (err) => {
        if (err === null || err === undefined) return
        clearTimeout(timer)
        this.#pending.delete(id)
        reject(new DnsUpstreamError(server.label, `send failed: ${err.message}`, { cause: err }))
      })
    })
  }

  async #tcp (server: UpstreamServer, question: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.#stopped) return Buffer.alloc(0)
    const id = randomInt(0, 65536)
    const query = queryMessage(id, question)
    const framed = Buffer.alloc(2 + query.length)
    framed.writeUInt16BE(query.length, 0)
    query.copy(framed, 2)
    this.#metrics.upstreamRequest(server.label, 'tcp')
    return await new Promise<Buffer>((resolve, reject) => {
      const sock = connect({ host: server.address, port: server.port })
      let buf: Buffer = Buffer.alloc(0)
      const finish = (err: Error | undefined, reply?: Buffer): void => {
        clearTimeout(timer)
        sock.destroy()
        if (err !== undefined) reject(err)
        else resolve(reply as Buffer)
      }
      const timer = setTimeout(() => finish(new DnsUpstreamTimeoutError(server.label, 'tcp', timeoutMs)), timeoutMs)
      sock.on('connect', () => sock.write(framed))
      sock.on('data', (chunk: Buffer) => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0)
          if (buf.length < 2 + len) return
          const msg = buf.subarray(2, 2 + len)
          buf = buf.subarray(2 + len)
          if (msg.length >= HEADER_BYTES && msg.readUInt16BE(0) === id && sameQuestion(msg, question)) { finish(undefined, Buffer.from(msg)); return }
        }
      })
      sock.on('error', err => finish(new DnsUpstreamError(server.label, `tcp: ${err.message}`, { cause: err })))
      sock.on('close', () => finish(new DnsUpstreamError(server.label, 'tcp connection closed before a reply')))
    })
  }
}

function failureOf (err: unknown): Failure {
  if (err instanceof DnsUpstreamTimeoutError) return 'timeout'
  return 'network'
}

/** The question section for `name` (presentation form, lowercase). */
function questionBytes (name: string, qtype: number, qclass: number): Buffer {
  const key = nameToKey(name)
  const q = Buffer.alloc(key.length + 4)
  q.write(key, 0, 'latin1')
  q.writeUInt16BE(qtype, key.length)
  q.writeUInt16BE(qclass, key.length + 2)
  return q
}

/** A recursive query with EDNS (our UDP size), DNSSEC not requested. */
function queryMessage (id: number, question: Buffer): Buffer {
  const opt = optRecord(EDNS_UDP_SIZE)
  const m = Buffer.alloc(HEADER_BYTES + question.length + opt.length)
  m.writeUInt16BE(id, 0)
  m[2] = FLAG2_RD
  m.writeUInt16BE(1, 4)
  m.writeUInt16BE(1, 10)
  question.copy(m, HEADER_BYTES)
  opt.copy(m, HEADER_BYTES + question.length)
  return m
}

/** True when `msg` carries exactly `question` (names compared without case). */
function sameQuestion (msg: Buffer, question: Buffer): boolean {
  if (msg.readUInt16BE(4) !== 1) return false
  const end = skipName(msg, HEADER_BYTES)
  if (end < 0 || end - HEADER_BYTES !== question.length - 4 || end + 4 > msg.length) return false
  for (let i = 0; i < question.length; i++) {
    let a = msg[HEADER_BYTES + i] as number
    let b = question[i] as number
    if (a >= 0x41 && a <= 0x5a) a |= 0x20
    if (b >= 0x41 && b <= 0x5a) b |= 0x20
    if (a !== b) return false
  }
  return true
}
