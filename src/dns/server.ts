/**
 * The DNS server component: UDP and TCP listeners on the bridge address,
 * answering through a DnsHandler. Sockets join a SO_REUSEPORT group, so a new
 * agent can bind while the old one still serves and a restart loses nothing.
 */
import { createSocket } from 'node:dgram'
import type { Socket as UdpSocket } from 'node:dgram'
import { createServer, isIPv6 } from 'node:net'
import type { Server as TcpServer, Socket as TcpSocket } from 'node:net'
import type { Registry } from 'prom-client'
import type { Component, StopOptions } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { EdgeDNSConfig } from '../config/schema.ts'
import type { ServiceMapView } from '../servicemap/types.ts'
import { DnsBindError, DnsConfigError } from './errors.ts'
import { DnsHandler } from './handler.ts'
import { DnsMetrics } from './metrics.ts'
import { Forwarder, detectClusterDns, parseHostPort, upstreamServer } from './upstream.ts'
import type { UpstreamServer } from './upstream.ts'

export interface DnsServerDeps {
  logger: Logger
  /** Registry the `edgemesh_dns_*` metrics are registered on (one DnsServer per registry). */
  metrics: Registry
  serviceMap: ServiceMapView
  /** Clients allowed to query (the node's own, see net/local-sources.ts). @default everyone */
  clients?: { isLocal: (address: string) => boolean }
}

export interface DnsServerInit {
  /** Address to serve on: the bridge device IP. */
  listenAddress: string
  /** @default 53 */
  listenPort?: number
  /** Cluster domain. @default 'cluster.local' */
  zone?: string
  /** TTL of cluster answers, seconds. @default 30 */
  ttl?: number
  /** Node-local cache mode: forward everything to the cluster DNS. @default disabled */
  cacheDNS?: { enable: boolean, autoDetect: boolean, upstreamServers: readonly string[], cacheTTL: number }
  /** The host's resolver configuration (read, never written). @default '/etc/resolv.conf' */
  resolvConfPath?: string
  /** Port the resolv.conf servers are asked on (resolv.conf cannot say; tests and benches use others). @default 53 */
  upstreamPort?: number
  /** UDP sockets in the SO_REUSEPORT group (spread across clients by the kernel). @default 1 */
  udpSockets?: number
  /** Per-attempt upstream timeout. @default 2000 */
  upstreamTimeoutMs?: number
  /** Idle TCP connections are closed after this. @default 10000 */
  tcpIdleTimeoutMs?: number
  /** A query whose first bytes arrived must be complete within this (a client dripping bytes is cut). @default 2000 */
  tcpReadTimeoutMs?: number
  /** At the cap a new connection evicts the one idle longest; refused only when none is idle. @default 1000 */
  maxTcpConnections?: number
}

/** The server's init from the agent config (`modules.edgeDNS`) and the bridge device address. */
export function dnsServerInit (config: EdgeDNSConfig, bridgeDeviceIP: string): DnsServerInit {
  return {
    listenAddress: bridgeDeviceIP,
    listenPort: config.listenPort,
    zone: config.clusterDomain,
    ttl: config.ttl,
    cacheDNS: config.cacheDNS
  }
}

// Room for a burst (the kernel doubles it: about a thousand queries), and no more: under
// overload a deeper queue only serves queries whose clients gave up seconds ago.
const RECV_BUFFER_BYTES = 256 * 1024

export class DnsServer implements Component {
  readonly name = 'dns'
  readonly #log: Logger
  readonly #registry: Registry
  readonly #view: ServiceMapView
  readonly #clients: { isLocal: (address: string) => boolean } | undefined
  readonly #init: DnsServerInit & Required<Pick<DnsServerInit, 'listenPort' | 'zone' | 'ttl' | 'resolvConfPath' | 'udpSockets' | 'upstreamTimeoutMs' | 'tcpIdleTimeoutMs' | 'maxTcpConnections'>>
  #metrics: DnsMetrics | undefined
  #forwarder: Forwarder | undefined
  #handler: DnsHandler | undefined
  #udp: UdpSocket[] = []
  #tcp: TcpServer | undefined
  /** Open TCP connections, with when each last went idle. */
  readonly #conns = new Map<TcpSocket, { since: number, idle: () => boolean }>()
  #unsubscribe: (() => void) | undefined
  #started = false
  #stopping: Promise<void> | undefined

  constructor (deps: DnsServerDeps, init: DnsServerInit) {
    this.#log = deps.logger
    this.#registry = deps.metrics
    this.#view = deps.serviceMap
    this.#clients = deps.clients
    this.#init = {
      listenPort: 53,
      zone: 'cluster.local',
      ttl: 30,
      resolvConfPath: '/etc/resolv.conf',
      udpSockets: 1,
      upstreamTimeoutMs: 2000,
      tcpIdleTimeoutMs: 10_000,
      maxTcpConnections: 1000,
      ...init
    }
  }

  /** The bound address (useful with listenPort 0 in tests). */
  address (): { address: string, port: number } {
    const a = this.#udp[0]?.address()
    return { address: a?.address ?? this.#init.listenAddress, port: a?.port ?? this.#init.listenPort }
  }

  isReady (): boolean {
    return this.#started && this.#stopping === undefined && (this.#init.cacheDNS?.enable === true || this.#view.hasSynced())
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#stopping = undefined
    const init = this.#init
    const cache = init.cacheDNS?.enable === true ? init.cacheDNS : undefined
    const staticServers = (cache?.upstreamServers ?? []).filter(s => s.trim() !== '').map(parseHostPort)
    if (cache !== undefined && !cache.autoDetect && staticServers.length === 0) {
      throw new DnsConfigError('cacheDNS is enabled with autoDetect off and no upstreamServers: nothing to forward to')
    }
    this.#metrics ??= new DnsMetrics(this.#registry)
    const self: UpstreamServer[] = [upstreamServer(init.listenAddress, init.listenPort)]
    const forwarder = new Forwarder({ logger: this.#log, metrics: this.#metrics }, {
      resolvConfPath: cache === undefined ? init.resolvConfPath : undefined,
      resolvConfPort: init.upstreamPort ?? 53,
      self,
      forceTcp: cache !== undefined,
      attemptTimeoutMs: init.upstreamTimeoutMs,
      totalTimeoutMs: 2 * init.upstreamTimeoutMs
    })
    const handler = new DnsHandler({ logger: this.#log, metrics: this.#metrics, serviceMap: this.#view, upstream: forwarder }, {
      zone: init.zone,
      ttl: init.ttl,
      nameserverIP: init.listenAddress,
      forwardAll: cache !== undefined,
      maxCacheTtl: cache?.cacheTTL ?? 30
    })
    let warnedNone = false
    const refreshUpstreams = (): void => {
      if (cache === undefined) return
      const detected = cache.autoDetect ? detectClusterDns(this.#view.snapshot()) : []
      const all = [...detected, ...staticServers].filter((s, i, a) => a.findIndex(o => o.label === s.label) === i)
      forwarder.setServers(all, cache.autoDetect ? 'cluster DNS services + upstreamServers' : 'upstreamServers')
      if (all.length === 0 && this.#view.hasSynced() && !warnedNone) {
        warnedNone = true
        this.#log.error('cacheDNS: no cluster DNS service found (kube-system/coredns, kube-dns, k8s-app=kube-dns) and no upstreamServers: every query fails with SERVFAIL')
      }
    }
    this.#unsubscribe = this.#view.subscribe(() => {
      handler.invalidate()
      refreshUpstreams()
    })
    this.#forwarder = forwarder
    this.#handler = handler
    try {
      await forwarder.start()
      refreshUpstreams()
      for (let i = 0; i < Math.max(1, init.udpSockets); i++) this.#udp.push(await this.#bindUdp(handler))
      this.#tcp = await this.#listenTcp(handler)
    } catch (err) {
      this.#unsubscribe?.()
      this.#unsubscribe = undefined
      await this.#release()
      throw err
    }
    this.#started = true
    const { address, port } = this.address()
    this.#log.info('DNS listening', {
      address, port, zone: init.zone, mode: cache === undefined ? 'cluster zone + forward' : 'cacheDNS', upstreams: forwarder.servers.map(s => s.label)
    })
  }

  async stop (options: StopOptions = {}): Promise<void> {
    if (!this.#started && this.#stopping === undefined) return
    this.#stopping ??= this.#drainAndRelease(options.signal)
    await this.#stopping
  }

  async #drainAndRelease (signal: AbortSignal | undefined): Promise<void> {
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
    // Stop accepting connections; keep answering UDP until forwarded queries finish.
    this.#tcp?.close()
    const handler = this.#handler
    if (handler !== undefined && signal?.aborted !== true) {
      const aborted = new Promise<void>(resolve => signal?.addEventListener('abort', () => resolve(), { once: true }))
      await Promise.race([handler.whenIdle(), aborted])
    }
    for (const c of this.#conns.keys()) c.end()
    await this.#release()
    this.#started = false
    this.#log.info('DNS stopped')
  }

  async #release (): Promise<void> {
    await Promise.all(this.#udp.map(async s => await new Promise<void>(resolve => { try { s.close(() => resolve()) } catch { resolve() } })))
    this.#udp = []
    for (const c of this.#conns.keys()) c.destroy()
    this.#conns.clear()
    const tcp = this.#tcp
    this.#tcp = undefined
    if (tcp !== undefined) await new Promise<void>(resolve => { if (tcp.listening) tcp.close(() => resolve()); else resolve() })
    await this.#forwarder?.stop()
    // libuv frees closed handles in the close phase, after this turn's setImmediate: wait into the next turn.
    for (let i = 0; i < 2; i++) await new Promise<void>(resolve => setImmediate(resolve))
  }

  async #bindUdp (handler: DnsHandler): Promise<UdpSocket> {
    const { listenAddress, listenPort } = this.#init
    const family = isIPv6(listenAddress) ? 6 : 4
    const sock = createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      reusePort: true,
      recvBufferSize: RECV_BUFFER_BYTES,
      // Replies go to literal addresses of the socket's own family: skip dns.lookup and its nextTick per send.
      lookup: (address, _options, cb) => { (cb as (err: null, address: string, family: number) => void)(null, address, family) }
    })
    await new Promise<void>((resolve, reject) => {
      sock.once('error', err => reject(new DnsBindError('udp', listenAddress, listenPort, { cause: err })))
      sock.bind({ address: listenAddress, port: this.#udp.length > 0 ? this.address().port : listenPort }, () => resolve())
    })
    sock.on('error', err => this.#log.debug('udp socket error', { err: err.message }))
    const clients = this.#clients
    sock.on('message', (msg, rinfo) => {
      // No answer at all to a host off the node: not an open resolver, and nothing to amplify.
      if (clients !== undefined && !clients.isLocal(rinfo.address)) { this.#metrics?.dropped('remote_source'); return }
      const reply = handler.respond(msg, false)
      if (reply === undefined) return
      if (reply instanceof Uint8Array) {
        sock.send(reply, rinfo.port, rinfo.address)
        return
      }
      reply.then(out => {
        if (out !== undefined && this.#udp.includes(sock)) sock.send(out, rinfo.port, rinfo.address)
      }, () => {})
    })
    return sock
  }

  async #listenTcp (handler: DnsHandler): Promise<TcpServer> {
    const { listenAddress, tcpIdleTimeoutMs, maxTcpConnections } = this.#init
    const port = this.address().port
    const server = createServer({ noDelay: true }, sock => this.#serveTcp(sock, handler, tcpIdleTimeoutMs, maxTcpConnections))
    await new Promise<void>((resolve, reject) => {
      server.once('error', err => reject(new DnsBindError('tcp', listenAddress, port, { cause: err })))
      server.listen({ host: listenAddress, port, reusePort: true }, () => resolve())
    })
    server.on('error', err => this.#log.warn('tcp listener error', { err: err.message }))
    return server
  }

  #serveTcp (sock: TcpSocket, handler: DnsHandler, idleMs: number, max: number): void {
    const metrics = this.#metrics
    if (this.#stopping !== undefined) { sock.destroy(); return }
    if (this.#clients !== undefined && !this.#clients.isLocal(sock.remoteAddress ?? '')) { metrics?.dropped('remote_source'); sock.destroy(); return }
    if (this.#conns.size >= max && !this.#evictIdlest()) {
      metrics?.tcpClosed('refused')
      sock.destroy()
      return
    }
    let buf: Buffer = Buffer.alloc(0)
    let inflight = 0
    // Idle: nothing buffered and nothing being answered; `since` orders eviction.
    const state = { since: performance.now(), idle: () => buf.length === 0 && inflight === 0 }
    this.#conns.set(sock, state)
    sock.setTimeout(idleMs, () => { metrics?.tcpClosed('idle'); sock.destroy() })
    sock.on('error', () => {})
    let deadline: NodeJS.Timeout | undefined
    sock.on('close', () => { clearTimeout(deadline); this.#conns.delete(sock) })
    const readMs = this.#init.tcpReadTimeoutMs ?? 2000
    const send = (out: Buffer): void => {
      if (sock.destroyed) return
      const len = Buffer.allocUnsafe(2)
      len.writeUInt16BE(out.length, 0)
      sock.cork()
      sock.write(len)
      sock.write(out)
      sock.uncork()
    }
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0)
        if (buf.length < 2 + len) break
        const msg = buf.subarray(2, 2 + len)
        buf = buf.subarray(2 + len)
        const reply = handler.respond(msg, true)
        if (reply === undefined) continue
        if (reply instanceof Uint8Array) { send(reply); continue }
        // Pipelined queries may be answered out of order (RFC 7766); bound what one connection holds.
        if (++inflight >= 64) sock.pause()
        reply.then(out => { if (out !== undefined) send(out) }, () => {}).finally(() => {
          if (--inflight === 0) state.since = performance.now()
          if (inflight < 64 && sock.isPaused()) sock.resume()
        })
      }
      // A started query has readMs to arrive whole; the idle timer alone restarts on every byte.
      if (buf.length === 0) {
        clearTimeout(deadline)
        deadline = undefined
        state.since = performance.now()
      } else {
        deadline ??= setTimeout(() => { metrics?.tcpClosed('read_deadline'); sock.destroy() }, readMs)
      }
    })
  }

  /** Closes the connection idle the longest, to make room for a new one; false when none is idle. */
  #evictIdlest (): boolean {
    let oldest: [TcpSocket, number] | undefined
    for (const [sock, state] of this.#conns) {
      if (state.idle() && (oldest === undefined || state.since < oldest[1])) oldest = [sock, state.since]
    }
    if (oldest === undefined) return false
    this.#metrics?.tcpClosed('evicted')
    this.#conns.delete(oldest[0])
    oldest[0].destroy()
    return true
  }
}
