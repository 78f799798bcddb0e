/**
 * What the gateway serves, computed from every Gateway and VirtualService:
 * the listeners (port, protocol, TLS) and, per port, the routes in Istio's
 * order. Pure and immutable: a change builds a new table and the gateway swaps
 * it in, so requests in flight finish on the table they started with.
 */
import type { GatewayServer, HttpMatch, HttpRoute, IstioGateway, L4Route, ServerTls, StringMatch, VirtualService } from './istio.ts'
import { GatewayPortConflictError } from './errors.ts'
import { byCodeUnits } from '../order.ts'
import { resolveDelegates } from './istio-delegate.ts'

/** `http`: HTTP/1.1 and h2c routed per request; `tcp`: bytes to one destination; `passthrough`: TLS routed by SNI, not terminated. */
export type ListenerKind = 'http' | 'tcp' | 'passthrough'

/** TLS a listener terminates: one credential per set of hosts (picked by SNI). */
export interface TerminateTls {
  mode: 'SIMPLE' | 'MUTUAL'
  /** In server order; the first is the default for clients without SNI. */
  credentials: Array<{ hosts: string[], secret: string }>
  minVersion?: ServerTls['minVersion']
  maxVersion?: ServerTls['maxVersion']
  ciphers: string[]
}

export interface ListenerSpec {
  port: number
  kind: ListenerKind
  tls: TerminateTls | undefined
  /** Plain HTTP requests are answered with a redirect to https (`tls.httpsRedirect`). */
  httpsRedirect: boolean
  /** `namespace/name` of the Gateways that asked for this port. */
  gateways: string[]
}

/** The routes of one HTTP domain on one port: several VirtualServices merged, oldest first. */
interface VirtualHost {
  domain: string
  routes: HttpRoute[]
}

export interface HttpRequestFacts {
  /** Host header (or :authority) as received, port included. */
  authority: string
  method: string
  /** Path with the query string, as received. */
  path: string
  scheme: 'http' | 'https'
  header: (name: string) => string | undefined
}

export interface HttpRouteMatch {
  route: HttpRoute
  /** The uri match that matched (a prefix rewrite replaces exactly it). */
  uri: StringMatch | undefined
}

/** The port a URL scheme implies: a redirect to it leaves the port out. */
export const SCHEME_PORTS: Readonly<Record<string, number>> = { http: 80, https: 443 }

/** Host without port, lower case: `Example.com:8080` → `example.com`, `[::1]:80` → `::1`. */
export function hostOf (authority: string): string {
  const a = authority.toLowerCase()
  if (a.startsWith('[')) return a.slice(1, a.indexOf(']') > 0 ? a.indexOf(']') : undefined)
  const colon = a.lastIndexOf(':')
  return colon >= 0 && a.indexOf(':') === colon ? a.slice(0, colon) : a
}

/** `*` matches everything, `*.example.com` any name ending in `.example.com`, anything else itself. */
export function hostMatches (pattern: string, host: string): boolean {
  if (pattern === '*') return true
  if (pattern.startsWith('*')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1
  return pattern === host
}

/** The narrower of two host patterns when one covers the other, else undefined (no host both admit). */
function intersect (a: string, b: string): string | undefined {
  if (a === '*') return b
  if (b === '*') return a
  const wa = a.startsWith('*')
  const wb = b.startsWith('*')
  if (!wa && !wb) return a === b ? a : undefined
  if (wa && !wb) return hostMatches(a, b) ? b : undefined
  if (!wa && wb) return hostMatches(b, a) ? a : undefined
  if (b.slice(1).endsWith(a.slice(1))) return b
  return a.slice(1).endsWith(b.slice(1)) ? a : undefined
}

/** Exact domains first, then wildcards longest first, `*` last: Envoy's virtual host order. */
function specificity (domain: string): number {
  if (domain === '*') return 0
  return domain.startsWith('*') ? domain.length : 1_000_000 + domain.length
}

function kindOf (s: GatewayServer): ListenerKind {
  if (s.protocol === 'TCP') return 'tcp'
  if (s.protocol === 'TLS') return s.tls?.mode === 'PASSTHROUGH' ? 'passthrough' : 'tcp'
  return 'http'
}

function byAge (a: VirtualService, b: VirtualService): number {
  return a.created - b.created || byCodeUnits(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`)
}

export function stringMatches (m: StringMatch, value: string, ignoreCase = false): boolean {
  if (m.kind === 'regex') return m.re.test(value)
  const v = ignoreCase ? value.toLowerCase() : value
  const want = ignoreCase ? m.value.toLowerCase() : m.value
  if (m.kind === 'exact') return v === want
  if (m.kind === 'prefix') return v.startsWith(want)
  return want === '/' || v === want || v.startsWith(want.endsWith('/') ? want : `${want}/`)
}

function keyedMatches (list: HttpMatch['headers'], get: (name: string) => string | undefined): boolean {
  for (const { name, match } of list) {
    const v = get(name)
    if (v === undefined) return false
    if (match !== 'present' && !stringMatches(match, v)) return false
  }
  return true
}

function queryOf (path: string): URLSearchParams {
  const q = path.indexOf('?')
  return new URLSearchParams(q < 0 ? '' : path.slice(q + 1))
}

function requestMatches (m: HttpMatch, req: HttpRequestFacts): boolean {
  if (m.uri !== undefined) {
    const q = req.path.indexOf('?')
    // Envoy: a prefix sees the whole :path, exact, regex and path prefixes see it without the query.
    const subject = m.uri.kind === 'prefix' ? req.path : q < 0 ? req.path : req.path.slice(0, q)
    if (!stringMatches(m.uri, subject, m.ignoreUriCase)) return false
  }
  if (m.method !== undefined && !stringMatches(m.method, req.method)) return false
  if (m.authority !== undefined && !stringMatches(m.authority, req.authority)) return false
  if (m.scheme !== undefined && !stringMatches(m.scheme, req.scheme)) return false
  if (!keyedMatches(m.headers, req.header)) return false
  for (const { name, match } of m.withoutHeaders) {
    const v = req.header(name)
    if (v !== undefined && (match === 'present' || stringMatches(match, v))) return false
  }
  if (m.queryParams.length > 0) {
    const query = queryOf(req.path)
    if (!keyedMatches(m.queryParams, name => query.get(name) ?? undefined)) return false
  }
  return true
}

const MAX_REMEMBERED_AUTHORITIES = 4096

export class RouteTable {
  readonly #listeners: Map<number, ListenerSpec>
  readonly #http: Map<number, VirtualHost[]>
  readonly #tcp: Map<number, L4Route[]>
  readonly #tls: Map<number, L4Route[]>
  /** Conflicts and unbound routes, for logs and status. */
  readonly problems: readonly string[]
  /** Per port: the virtual host found for each authority seen (null: none). */
  readonly #byAuthority = new Map<number, Map<string, VirtualHost | null>>()

  constructor (parts: { listeners: Map<number, ListenerSpec>, http: Map<number, VirtualHost[]>, tcp: Map<number, L4Route[]>, tls: Map<number, L4Route[]>, problems: string[] }) {
    this.#listeners = parts.listeners
    this.#http = parts.http
    this.#tcp = parts.tcp
    this.#tls = parts.tls
    this.problems = parts.problems
  }

  listeners (): ListenerSpec[] {
    return [...this.#listeners.values()]
  }

  listener (port: number): ListenerSpec | undefined {
    return this.#listeners.get(port)
  }

  /**
   * The virtual host of a request's authority, remembered per authority: at
   * 5,000 routes the domains are searched one by one. The table never changes,
   * so what is remembered stays right; clients choose the authority, so at
   * most MAX_REMEMBERED_AUTHORITIES are kept per port.
   */
  #virtualHost (port: number, authority: string): VirtualHost | undefined {
    let known = this.#byAuthority.get(port)
    if (known === undefined) {
      known = new Map()
      this.#byAuthority.set(port, known)
    }
    let vhost = known.get(authority)
    if (vhost === undefined) {
      const host = hostOf(authority)
      vhost = (this.#http.get(port) ?? []).find(v => hostMatches(v.domain, host)) ?? null
      if (known.size >= MAX_REMEMBERED_AUTHORITIES) known.clear()
      known.set(authority, vhost)
    }
    return vhost ?? undefined
  }

  /** Every HTTP route served on a port, for status: `domain → route ids`. */
  httpRoutes (port: number): Array<{ domain: string, routes: string[] }> {
    return (this.#http.get(port) ?? []).map(v => ({ domain: v.domain, routes: v.routes.map(r => r.id) }))
  }

  /**
   * The route for one request: the most specific domain that admits the
   * request's host, then its routes in order, the first whose match (any of
   * its `match` entries, or none) fits.
   */
  matchHttp (port: number, req: HttpRequestFacts): HttpRouteMatch | undefined {
    const vhost = this.#virtualHost(port, req.authority)
    if (vhost === undefined) return undefined
    for (const route of vhost.routes) {
      if (route.match.length === 0) return { route, uri: undefined }
      for (const m of route.match) if (requestMatches(m, req)) return { route, uri: m.uri }
    }
    return undefined
  }

  /** The TCP route of a port: the first that matches it. */
  tcpRoute (port: number): L4Route | undefined {
    return this.#tcp.get(port)?.[0]
  }

  /** The TLS passthrough route for a server name (SNI); undefined without one. */
  tlsRoute (port: number, sni: string | undefined): L4Route | undefined {
    const name = (sni ?? '').toLowerCase()
    for (const r of this.#tls.get(port) ?? []) {
      if (r.match.length === 0) return r
      if (r.match.some(m => m.sniHosts.length === 0 || m.sniHosts.some(h => hostMatches(h, name)))) return r
    }
    return undefined
  }
}

/**
 * Binds VirtualServices to Gateway servers as Istio does: the VirtualService
 * names the Gateway in `gateways`, a server's hosts admit its namespace, and
 * at least one of its hosts intersects one of the server's. Conflicting
 * servers on one port keep the oldest Gateway's. Delegated routes are put in
 * place first (istio-delegate.ts).
 */
export function buildRouteTable (gateways: readonly IstioGateway[], given: readonly VirtualService[]): RouteTable {
  const { virtualServices, problems } = resolveDelegates(given)
  const listeners = new Map<number, ListenerSpec>()
  /** Servers that made it onto a listener, with their gateway. */
  const served: Array<{ gateway: string, server: GatewayServer }> = []
  for (const gw of [...gateways].sort((a, b) => byCodeUnits(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`))) {
    const gwKey = `${gw.namespace}/${gw.name}`
    for (const server of gw.servers) {
      const kind = kindOf(server)
      const terminate = server.tls !== undefined && server.tls.mode !== 'PASSTHROUGH' && server.tls.credentialName !== ''
      const existing = listeners.get(server.port)
      // Gateway API certificate references may name another namespace (`ns/name`).
      const credentialName = server.tls?.credentialName ?? ''
      const credential = terminate ? [{ hosts: server.hosts.map(h => h.host), secret: credentialName.includes('/') ? credentialName : `${gw.namespace}/${credentialName}` }] : []
      if (existing === undefined) {
        const spec: ListenerSpec = { port: server.port, kind, tls: undefined, httpsRedirect: server.tls?.httpsRedirect === true && !terminate, gateways: [gwKey] }
        if (terminate && server.tls !== undefined) {
          spec.tls = { mode: server.tls.mode as 'SIMPLE' | 'MUTUAL', credentials: credential, ciphers: server.tls.ciphers }
          if (server.tls.minVersion !== undefined) spec.tls.minVersion = server.tls.minVersion
          if (server.tls.maxVersion !== undefined) spec.tls.maxVersion = server.tls.maxVersion
        }
        listeners.set(server.port, spec)
      } else if (existing.kind !== kind || (existing.tls === undefined) === terminate || (existing.tls !== undefined && server.tls?.mode !== existing.tls.mode)) {
        problems.push(new GatewayPortConflictError(server.port, `${existing.gateways[0] ?? ''} (${existing.kind}${existing.tls !== undefined ? ', TLS' : ''})`, `${gwKey} (${kind}${terminate ? ', TLS' : ''})`).message)
        continue
      } else {
        if (!existing.gateways.includes(gwKey)) existing.gateways.push(gwKey)
        existing.tls?.credentials.push(...credential)
      }
      served.push({ gateway: gwKey, server })
    }
  }

  const vhosts = new Map<number, Map<string, VirtualHost>>()
  const tcp = new Map<number, L4Route[]>()
  const tls = new Map<number, L4Route[]>()
  const l4Fits = (r: L4Route, gateway: string, port: number): boolean =>
    r.match.length === 0 || r.match.some(m => (m.port === undefined || m.port === port) && (m.gateways.length === 0 || m.gateways.includes(gateway)))
  for (const vs of [...virtualServices].sort(byAge)) {
    let bound = false
    for (const { gateway, server } of served) {
      if (!vs.gateways.includes(gateway)) continue
      const domains = new Set<string>()
      for (const sh of server.hosts) {
        if (sh.namespace !== '*' && sh.namespace !== vs.namespace) continue
        for (const h of vs.hosts) {
          const d = intersect(sh.host, h)
          if (d !== undefined) domains.add(d)
        }
      }
      if (domains.size === 0) continue
      bound = true
      const kind = listeners.get(server.port)?.kind
      if (kind === 'http') {
        const routes = vs.http.flatMap(r => {
          const match = r.match.filter(m => (m.port === undefined || m.port === server.port) && (m.gateways.length === 0 || m.gateways.includes(gateway)))
          // A route whose every match names another port or gateway is not for this server.
          if (r.match.length > 0 && match.length === 0) return []
          return [match.length === r.match.length ? r : { ...r, match }]
        })
        let byDomain = vhosts.get(server.port)
        if (byDomain === undefined) vhosts.set(server.port, byDomain = new Map())
        for (const d of domains) {
          let v = byDomain.get(d)
          if (v === undefined) byDomain.set(d, v = { domain: d, routes: [] })
          for (const r of routes) if (!v.routes.includes(r)) v.routes.push(r)
        }
      } else if (kind === 'tcp') {
        const list = tcp.get(server.port) ?? []
        for (const r of vs.tcp) if (l4Fits(r, gateway, server.port) && !list.includes(r)) list.push(r)
        tcp.set(server.port, list)
      } else if (kind === 'passthrough') {
        const list = tls.get(server.port) ?? []
        for (const r of vs.tls) {
          if (!l4Fits(r, gateway, server.port) || list.includes(r)) continue
          // SNI names outside the VirtualService's hosts are not its to route.
          list.push(r)
        }
        tls.set(server.port, list)
      }
    }
    if (!bound && vs.gateways.length > 0) problems.push(`VirtualService ${vs.namespace}/${vs.name}: bound to no served Gateway server (gateways ${vs.gateways.join(', ')}, hosts ${vs.hosts.join(', ')})`)
  }
  const http = new Map<number, VirtualHost[]>()
  for (const [port, byDomain] of vhosts) {
    const sorted = [...byDomain.values()].sort((a, b) => specificity(b.domain) - specificity(a.domain))
    // Stable: Istio routes (no precedence) keep their merged order, ahead of Gateway API routes.
    for (const v of sorted) if (v.routes.some(r => r.precedence !== undefined)) v.routes.sort((a, b) => (a.precedence ?? -1) - (b.precedence ?? -1))
    http.set(port, sorted)
  }
  return new RouteTable({ listeners, http, tcp, tls, problems })
}
