/**
 * The edge gateway: listeners for the ports Istio Gateways ask for, on the
 * addresses `edgeGateway.nic/includeIP/excludeIP` select, serving the routes
 * of the VirtualServices bound to them. Every change of a Gateway,
 * VirtualService or Secret builds a new route table and swaps it in; a port
 * keeps its listener as long as some Gateway asks for it, so live connections
 * and requests in flight are not dropped by route or certificate changes.
 */
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import type { Duplex } from 'node:stream'
import type { Registry } from 'prom-client'
import type { Component, StopOptions } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { GatewayStatus } from '../observability/status.ts'
import type { Informer } from '../kube/informer-types.ts'
import type { KubeObject } from '../kube/types.ts'
import { objectKey } from '../kube/types.ts'
import type { LoadBalancer } from '../loadbalancer/index.ts'
import { hostToService } from '../loadbalancer/index.ts'
import type { EndpointDialer } from '../mesh/endpoint-dialer.ts'
import type { ServiceMapView } from '../servicemap/types.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import { splice } from '../net/splice.ts'
import { byCodeUnits } from '../order.ts'
import { WarnSummary } from '../observability/warn-summary.ts'
import { parseGateway, parseVirtualService } from './istio.ts'
import type { IstioGateway, L4Route, VirtualService } from './istio.ts'
import { buildRouteTable, hostMatches } from './route-table.ts'
import type { ListenerSpec, RouteTable } from './route-table.ts'
import { Backends } from './backends.ts'
import { HttpHandler } from './http-handler.ts'
import { Credentials } from './credentials.ts'
import { MAX_HELLO_BYTES, readServerName } from './tls-sni.ts'
import { GatewayMetrics } from './metrics.ts'
import { createHttpFront } from './http-front.ts'
import { FastHttp1 } from './http1-fast.ts'
import { GatewayResourceError } from './errors.ts'
import { translateGatewayApi } from './gateway-api.ts'
import type { GatewayApiModel, RouteKind } from './gateway-api.ts'
import { desiredStatus } from './gateway-api-status.ts'
import type { GatewayApiStatusWriter } from './gateway-api-status.ts'

/** The Gateway API objects the gateway reads; `namespaces` only for `allowedRoutes` selectors. */
export interface GatewayApiInformers {
  classes: Informer<KubeObject>
  gateways: Informer<KubeObject>
  routes: Record<RouteKind, Informer<KubeObject>>
  grants: Informer<KubeObject>
  namespaces: Informer<KubeObject>
}

export interface GatewayDeps {
  logger: Logger
  metrics: Registry
  serviceMap: ServiceMapView
  loadBalancer: LoadBalancer
  dialer: EndpointDialer
  gateways: Informer<KubeObject>
  virtualServices: Informer<KubeObject>
  secrets: Informer<KubeObject>
  /** Absent: the Gateway API is not served (no CRDs, or a standalone file without them). */
  gatewayApi?: GatewayApiInformers | undefined
  /** DestinationRules (their `subsets`) and Pods (their labels): what a destination's `subset` selects. */
  destinationRules?: Informer<KubeObject> | undefined
  pods?: Informer<KubeObject> | undefined
  /** Absent: status is not written back (a standalone file has no API to write to). */
  statusWriter?: GatewayApiStatusWriter | undefined
  /** Every live gateway replica's listen addresses, for Gateway status (replicas.ts); this gateway's own when absent. */
  replicaAddresses?: (() => readonly string[]) | undefined
  copied?: CopiedStreams | undefined
}

export interface GatewayInit {
  /** IPv4 addresses every listener binds (see listen-addresses.ts). */
  listenAddresses: readonly string[]
  /** A client must send a request's head within this. @default 10000 */
  headersTimeoutMs?: number
  /** Idle keep-alive client connections close after this. @default 60000 */
  keepAliveTimeoutMs?: number
  /** A TLS client must finish its handshake, or a passthrough client send its ClientHello, within this. @default 10000 */
  handshakeTimeoutMs?: number
  /** Client connections per listener port. @default 16384 */
  maxConnectionsPerPort?: number
}

/** What a port is served with now; a change of it rebinds the port. */
function signature (spec: ListenerSpec): string {
  return `${spec.kind}|${spec.tls?.mode ?? 'plain'}`
}

interface PortState {
  spec: ListenerSpec
  sig: string
  servers: net.Server[]
  /** Addresses that could not be bound, with why. */
  failed: Array<{ address: string, error: string }>
  sockets: Set<net.Socket>
  /** Per HTTP server: closes its idle keep-alive connections and HTTP/2 sessions. */
  closeIdle: Array<() => void>
}

/** Picks a listener's credential by server name: the first whose hosts admit it, else the first. */
function credentialFor (spec: ListenerSpec, serverName: string | undefined): string | undefined {
  const creds = spec.tls?.credentials ?? []
  const name = (serverName ?? '').toLowerCase()
  return (creds.find(c => c.hosts.some(h => hostMatches(h, name))) ?? creds[0])?.secret
}

/** An object's labels ({} without any); undefined for no object. */
function labelsOf (o: KubeObject | undefined): Record<string, string> | undefined {
  return o === undefined ? undefined : o.metadata.labels ?? {}
}

/** The `subsets` of every DestinationRule, by the Service its `host` names (none for wildcard or external hosts); the first rule by `namespace/name` wins a name twice defined. */
function subsetsOf (rules: readonly KubeObject[]): Map<string, Map<string, Record<string, string>>> {
  const out = new Map<string, Map<string, Record<string, string>>>()
  for (const r of [...rules].sort((a, b) => byCodeUnits(objectKey(a), objectKey(b)))) {
    const spec = (r as KubeObject & { spec?: { host?: unknown, subsets?: unknown } }).spec
    if (typeof spec?.host !== 'string' || !Array.isArray(spec.subsets)) continue
    // The load balancer's reading of `host`: the rule whose policy a Service gets is the one whose subsets apply.
    const service = hostToService(spec.host, r.metadata.namespace ?? 'default')
    if (service === undefined) continue
    let byName = out.get(service)
    if (byName === undefined) out.set(service, byName = new Map())
    for (const sub of spec.subsets as Array<{ name?: unknown, labels?: unknown }>) {
      if (typeof sub?.name !== 'string' || byName.has(sub.name)) continue
      const labels = typeof sub.labels === 'object' && sub.labels !== null ? Object.fromEntries(Object.entries(sub.labels).map(([k, v]) => [k, String(v)])) : {}
      byName.set(sub.name, labels)
    }
  }
  return out
}

export class EdgeGateway implements Component {
  readonly name = 'gateway'
  readonly #deps: GatewayDeps
  readonly #init: Required<GatewayInit>
  readonly #log: Logger
  readonly #metrics: GatewayMetrics
  readonly #backends: Backends
  readonly #http: HttpHandler
  readonly #credentials: Credentials
  readonly #failures: WarnSummary
  readonly #ports = new Map<number, PortState>()
  /** Ports no Gateway asks for any more, whose connections are still open. */
  readonly #draining = new Set<PortState>()
  #table: RouteTable = buildRouteTable([], [])
  #rejected = new Map<string, string>()
  /** Parsed forms by informer object: an update replaces the object, so one change re-parses one resource, not all. */
  readonly #parsed = new WeakMap<KubeObject, IstioGateway | VirtualService | GatewayResourceError>()
  #problems = new Set<string>()
  #rebuild: NodeJS.Immediate | undefined
  #reconciling: Promise<void> = Promise.resolve()
  #unsubscribe: (() => void) | undefined
  /** DestinationRule subsets by Service (`namespace/name`), then subset name: their pod labels. */
  #subsets = new Map<string, Map<string, Record<string, string>>>()
  /** Services Gateway API routes name that do not exist: their creation changes those routes' status. */
  #missingServices = new Set<string>()
  #started = false

  constructor (deps: GatewayDeps, init: GatewayInit) {
    this.#deps = deps
    this.#init = { headersTimeoutMs: 10_000, keepAliveTimeoutMs: 60_000, handshakeTimeoutMs: 10_000, maxConnectionsPerPort: 16_384, ...init }
    this.#log = deps.logger
    this.#metrics = new GatewayMetrics(deps.metrics)
    this.#backends = new Backends({
      ...deps,
      subset: (service, subset) => this.#subsets.get(service)?.get(subset),
      podLabels: key => labelsOf(deps.pods?.get(key))
    })
    this.#http = new HttpHandler({ logger: deps.logger, metrics: this.#metrics, backends: this.#backends, table: () => this.#table, copied: deps.copied })
    this.#credentials = new Credentials(key => deps.secrets.get(key))
    this.#failures = new WarnSummary(deps.logger, 'gateway connections failed')
    if (deps.statusWriter !== undefined) deps.statusWriter.onRetry = () => this.resourcesChanged()
  }

  /** Called by the informers' handlers: the table is rebuilt once per burst of changes. */
  resourcesChanged (): void {
    if (!this.#started || this.#rebuild !== undefined) return
    this.#rebuild = setImmediate(() => {
      this.#rebuild = undefined
      // A failed rebuild keeps the last table and must not stop the next ones.
      this.#reconciling = this.#reconciling.then(async () => { await this.#apply() }).catch((err: unknown) => {
        this.#log.error('gateway routes not rebuilt; the previous ones keep serving', { err })
      })
    })
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    this.#deps.statusWriter?.open()
    const lb = this.#deps.loadBalancer
    lb.onServicesChanged([...this.#deps.serviceMap.snapshot()].map(([key, entry]) => ({ type: 'upsert' as const, key, entry })))
    this.#unsubscribe = this.#deps.serviceMap.subscribe(changes => {
      lb.onServicesChanged(changes)
      // Gateway API status says which backends exist: a Service appearing or going away changes it.
      if (this.#deps.gatewayApi !== undefined && changes.some(c => c.type === 'delete' || this.#missingServices.has(c.key))) this.resourcesChanged()
    })
    await this.#apply()
  }

  async stop (options?: StopOptions): Promise<void> {
    if (!this.#started) return
    this.#started = false
    clearImmediate(this.#rebuild)
    this.#rebuild = undefined
    await this.#reconciling
    await this.#deps.statusWriter?.close()
    this.#unsubscribe?.()
    const ports = [...this.#ports.values(), ...this.#draining]
    this.#ports.clear()
    this.#draining.clear()
    await Promise.all(ports.map(async p => { await this.#close(p, options?.signal) }))
    this.#backends.close()
    this.#failures.flush()
  }

  isReady (): boolean {
    return this.#started && [...this.#ports.values()].every(p => p.failed.length === 0)
  }

  /** The listeners that could not bind, by port and address: what /readyz names. */
  whyNotReady (): string[] {
    return [...this.#ports.values()].flatMap(p => p.failed.map(f => `gateway port ${p.spec.port} on ${f.address}: ${f.error}`))
  }

  status (): GatewayStatus {
    return {
      listeners: [...this.#ports.values()].map(p => ({
        port: p.spec.port,
        kind: p.spec.kind,
        tls: p.spec.tls?.mode ?? 'none',
        gateways: p.spec.gateways,
        addresses: this.#init.listenAddresses.filter(a => !p.failed.some(f => f.address === a)),
        ...(p.failed.length > 0 ? { failed: p.failed } : {}),
        connections: p.sockets.size,
        ...(p.spec.kind === 'http' ? { routes: this.#table.httpRoutes(p.spec.port) } : {})
      })),
      rejected: Object.fromEntries(this.#rejected),
      problems: [...this.#problems]
    }
  }

  /** The Gateway API objects as servers and VirtualServices, and the status each should show. */
  #translate (): GatewayApiModel | undefined {
    const api = this.#deps.gatewayApi
    if (api === undefined) return undefined
    const missing = new Set<string>()
    this.#missingServices = missing
    return translateGatewayApi({
      classes: api.classes.list(),
      gateways: api.gateways.list(),
      routes: (Object.entries(api.routes) as Array<[RouteKind, Informer<KubeObject>]>).map(([kind, informer]) => ({ kind, objects: informer.list() })),
      grants: api.grants.list(),
      namespaceLabels: ns => labelsOf(api.namespaces.get(ns)),
      serviceExists: key => {
        const found = this.#deps.serviceMap.get(key) !== undefined
        if (!found) missing.add(key)
        return found
      },
      // The same loading a listener's handshakes use: a Secret that resolves here also serves.
      secretProblem: key => this.#credentials.problem(key)
    })
  }

  #parse (): { gateways: IstioGateway[], virtualServices: VirtualService[] } {
    const rejected = new Map<string, string>()
    const parseAll = <T extends IstioGateway | VirtualService>(kind: 'Gateway' | 'VirtualService', list: KubeObject[], parse: (o: KubeObject) => T): T[] => list.flatMap(o => {
      let parsed = this.#parsed.get(o)
      if (parsed === undefined) {
        try {
          parsed = parse(o)
        } catch (err) {
          // Odd input the parser did not foresee is that resource's problem, never the gateway's.
          parsed = err instanceof GatewayResourceError ? err : new GatewayResourceError(`${kind} ${objectKey(o)}`, 'spec', `cannot be read (${(err as Error).message})`)
        }
        this.#parsed.set(o, parsed)
      }
      if (!(parsed instanceof GatewayResourceError)) return [parsed as T]
      const key = `${kind} ${objectKey(o)}`
      rejected.set(key, parsed.message)
      if (this.#rejected.get(key) !== parsed.message) {
        this.#metrics.rejected.inc({ kind })
        this.#log.warn('gateway resource rejected; everything else keeps serving', { resource: key, err: parsed.message })
      }
      return []
    })
    const gateways = parseAll('Gateway', this.#deps.gateways.list(), parseGateway)
    const virtualServices = parseAll('VirtualService', this.#deps.virtualServices.list(), parseVirtualService)
    this.#rejected = rejected
    return { gateways, virtualServices }
  }

  async #apply (): Promise<void> {
    if (!this.#started) return
    const rejectedBefore = this.#rejected
    const istio = this.#parse()
    const api = this.#translate()
    const gateways = api === undefined ? istio.gateways : [...istio.gateways, ...api.gateways]
    const virtualServices = api === undefined ? istio.virtualServices : [...istio.virtualServices, ...api.virtualServices]
    if (api !== undefined) this.#noteRejectedRoutes(api, rejectedBefore)
    this.#subsets = subsetsOf(this.#deps.destinationRules?.list() ?? [])
    const table = buildRouteTable(gateways, virtualServices)
    const problems = new Set(table.problems)
    for (const p of problems) if (!this.#problems.has(p)) this.#log.warn('gateway route not served', { problem: p })
    this.#problems = problems
    this.#table = table
    this.#metrics.routes.set(virtualServices.reduce((n, vs) => n + vs.http.length + vs.tcp.length + vs.tls.length, 0))
    const wanted = new Map(table.listeners().map(s => [s.port, s]))
    for (const [port, state] of [...this.#ports]) {
      const spec = wanted.get(port)
      // A port with addresses it could not bind is opened again on every rebuild: the holder may be gone.
      if (spec !== undefined && signature(spec) === state.sig && state.failed.length === 0) {
        state.spec = spec
        this.#refreshTls(state)
        continue
      }
      this.#ports.delete(port)
      // Stops accepting; connections already open finish on their own.
      this.#draining.add(state)
      await this.#close(state, undefined, false)
    }
    for (const [port, spec] of wanted) {
      if (this.#ports.has(port)) continue
      this.#ports.set(port, await this.#open(spec))
    }
    const secrets = new Set<string>()
    for (const s of wanted.values()) for (const c of s.tls?.credentials ?? []) { secrets.add(c.secret) }
    this.#credentials.retain(secrets)
    if (api !== undefined) this.#deps.statusWriter?.publish(desiredStatus(api, { addresses: this.#deps.replicaAddresses?.() ?? this.#init.listenAddresses, notProgrammed: (key, port) => this.#notProgrammed(key, port) }))
  }

  /** Why a Gateway API listener is not serving: its port went to another Gateway, or could not be bound. */
  #notProgrammed (key: string, port: number): string | undefined {
    const spec = this.#table.listener(port)
    if (spec === undefined || !spec.gateways.includes(key)) return `port ${port} is served for ${spec?.gateways[0] ?? 'another Gateway'} with another protocol`
    const failed = this.#ports.get(port)?.failed ?? []
    return failed.length === 0 ? undefined : failed.map(f => `cannot listen on ${f.address}:${port}: ${f.error}`).join('; ')
  }

  /** Gateway API routes refused for their spec join the Istio rejects in /status (their conditions say the same). */
  #noteRejectedRoutes (api: GatewayApiModel, before: ReadonlyMap<string, string>): void {
    for (const [key, r] of api.routeStatus) {
      const refused = r.parents.flatMap(p => p.conditions).find(c => c.type === 'Accepted' && c.reason === 'UnsupportedValue')
      if (refused === undefined) continue
      if (before.get(key) !== refused.message) {
        this.#metrics.rejected.inc({ kind: r.kind })
        this.#log.warn('gateway resource rejected; everything else keeps serving', { resource: key, err: refused.message })
      }
      this.#rejected.set(key, refused.message)
    }
  }

  /** New certificates for clients without SNI (with SNI, each handshake asks for the current one). */
  #refreshTls (state: PortState): void {
    const spec = state.spec
    if (spec.tls === undefined) return
    const secret = credentialFor(spec, undefined)
    if (secret === undefined) return
    try {
      const options = this.#credentials.options(secret, spec.tls)
      for (const s of state.servers) (s as tls.Server).setSecureContext(options)
    } catch (err) {
      this.#failures.record(`port ${spec.port} ${(err as Error).message}`)
    }
  }

  #sniCallback (state: PortState): (name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void {
    return (name, cb) => {
      const spec = state.spec
      const secret = credentialFor(spec, name)
      if (secret === undefined || spec.tls === undefined) { cb(new Error('no credential')); return }
      try {
        cb(null, this.#credentials.context(secret, spec.tls))
      } catch (err) {
        this.#failures.record(`port ${spec.port} ${(err as Error).message}`)
        cb(err as Error)
      }
    }
  }

  #tlsOptions (state: PortState): tls.TlsOptions {
    const spec = state.spec
    const t = spec.tls
    const options: tls.TlsOptions = {
      SNICallback: this.#sniCallback(state),
      handshakeTimeout: this.#init.handshakeTimeoutMs,
      requestCert: t?.mode === 'MUTUAL',
      rejectUnauthorized: t?.mode === 'MUTUAL'
    }
    const secret = credentialFor(spec, undefined)
    if (secret !== undefined && t !== undefined) {
      try {
        Object.assign(options, this.#credentials.options(secret, t))
      } catch (err) {
        // The listener is bound anyway; handshakes fail until the Secret is there.
        this.#log.warn('gateway TLS credential not loaded; handshakes on this port fail until it is', { port: spec.port, err: (err as Error).message })
      }
    }
    return options
  }

  #makeServer (state: PortState): net.Server {
    const spec = state.spec
    const port = spec.port
    // Node checks the headers deadline every connectionsCheckingInterval (30 s by default): once a second keeps it near 10 s.
    const httpOptions: http.ServerOptions = { headersTimeout: this.#init.headersTimeoutMs, keepAliveTimeout: this.#init.keepAliveTimeoutMs, maxHeaderSize: 16 * 1024, connectionsCheckingInterval: 1000 }
    if (spec.kind === 'http') {
      const scheme = spec.tls !== undefined ? 'https' : 'http'
      const fast = new FastHttp1({ logger: this.#log, metrics: this.#metrics, backends: this.#backends, table: () => this.#table, headersTimeoutMs: this.#init.headersTimeoutMs, keepAliveTimeoutMs: this.#init.keepAliveTimeoutMs }, port, scheme)
      const front = createHttpFront({
        fast,
        ...(spec.tls !== undefined ? { tls: this.#tlsOptions(state) } : {}),
        http: httpOptions,
        idleTimeoutMs: this.#init.keepAliveTimeoutMs,
        firstBytesTimeoutMs: this.#init.headersTimeoutMs,
        maxStreams: 128,
        onRequest: (req, res) => { this.#http.handle(port, scheme, req as http.IncomingMessage, res as http.ServerResponse) },
        onUpgrade: (req, socket, head) => { this.#http.upgrade(port, scheme, req, socket, head) },
        onClientError: (err, socket) => {
          // As Node's own handler answers, without its body.
          const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'
          if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
          else socket.destroy()
        }
      })
      state.closeIdle.push(front.closeIdle)
      return front.server
    }
    if (spec.kind === 'tcp' && spec.tls !== undefined) {
      const server = tls.createServer(this.#tlsOptions(state), socket => { this.#pipe(socket, port, this.#table.tcpRoute(port), undefined) })
      server.on('tlsClientError', (_err, socket) => { socket.destroy() })
      return server
    }
    if (spec.kind === 'tcp') return net.createServer({ allowHalfOpen: true }, socket => { this.#pipe(socket, port, this.#table.tcpRoute(port), undefined) })
    return net.createServer({ allowHalfOpen: true }, socket => { this.#passthrough(socket, port) })
  }

  async #open (spec: ListenerSpec): Promise<PortState> {
    const state: PortState = { spec, sig: signature(spec), servers: [], failed: [], sockets: new Set(), closeIdle: [] }
    for (const address of this.#init.listenAddresses) {
      const server = this.#makeServer(state)
      server.maxConnections = this.#init.maxConnectionsPerPort
      server.on('connection', (socket: net.Socket) => {
        state.sockets.add(socket)
        this.#metrics.connections.inc({ port: String(spec.port) })
        socket.once('close', () => {
          state.sockets.delete(socket)
          this.#metrics.connections.dec({ port: String(spec.port) })
        })
      })
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen({ host: address, port: spec.port }, () => { server.off('error', reject); resolve() })
        })
        server.on('error', err => this.#log.warn('gateway listener error', { port: spec.port, address, err }))
        state.servers.push(server)
      } catch (err) {
        const error = (err as NodeJS.ErrnoException).code ?? (err as Error).message
        state.failed.push({ address, error })
        this.#log.error('gateway port not served on this address', { port: spec.port, address, error, gateways: spec.gateways })
      }
    }
    this.#log.info('gateway listener', { port: spec.port, kind: spec.kind, tls: spec.tls?.mode ?? 'none', addresses: state.servers.length, gateways: spec.gateways })
    return state
  }

  /** Stops accepting on a port; with `drain` false open connections go on, else they are ended when `signal` aborts. */
  async #close (state: PortState, signal?: AbortSignal, drain = true): Promise<void> {
    const closed = Promise.all(state.servers.map(async s => { await new Promise<void>(resolve => s.close(() => { this.#draining.delete(state); resolve() })) }))
    for (const closeIdle of state.closeIdle) closeIdle()
    if (!drain) return
    const destroyAll = (): void => { for (const s of state.sockets) s.destroy() }
    if (signal?.aborted === true) destroyAll()
    else signal?.addEventListener('abort', destroyAll, { once: true })
    await closed
    signal?.removeEventListener('abort', destroyAll)
  }

  /** A TCP (or terminated TLS) connection to its route's destination. */
  #pipe (client: Duplex, port: number, route: L4Route | undefined, head: Buffer | undefined): void {
    client.on('error', () => {})
    if (route === undefined) {
      this.#metrics.answered('none', 'tcp')
      client.destroy()
      return
    }
    const resolved = this.#backends.choose(route.route)
    if (!resolved.ok) {
      this.#failures.record(`${route.id}: ${resolved.why}`)
      client.destroy()
      return
    }
    this.#metrics.answered(route.id, 'tcp')
    const socket = client as net.Socket
    const connect = async (): Promise<void> => {
      const abort = new AbortController()
      const gone = (): void => abort.abort()
      client.once('close', gone)
      const up = await this.#backends.connect(resolved, { clientIP: socket.remoteAddress, clientPort: socket.remotePort }, abort.signal, () => this.#metrics.connectErrors.inc({ route: route.id }))
      client.off('close', gone)
      if (up !== undefined && !client.destroyed) {
        splice(client, up, { head, copied: this.#deps.copied })
        return
      }
      up?.destroy()
      if (!abort.signal.aborted) this.#failures.record(`${route.id}: no endpoint reachable`)
      client.destroy()
    }
    connect().catch(() => client.destroy())
  }

  /** Reads the ClientHello's server name, then pipes the untouched bytes to the matching TLS route. */
  #passthrough (socket: net.Socket, port: number): void {
    const chunks: Buffer[] = []
    let size = 0
    const timer = setTimeout(() => { socket.destroy() }, this.#init.handshakeTimeoutMs)
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      size += chunk.length
      const buf = Buffer.concat(chunks)
      const hello = readServerName(buf)
      if (hello.state === 'need-more' && size < MAX_HELLO_BYTES) return
      socket.off('data', onData)
      clearTimeout(timer)
      socket.pause()
      if (hello.state !== 'done') { socket.destroy(); return }
      this.#pipe(socket, port, this.#table.tlsRoute(port, hello.serverName), buf)
    }
    socket.on('data', onData)
    socket.on('error', () => {})
    socket.once('close', () => clearTimeout(timer))
  }
}
