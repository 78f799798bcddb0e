/**
 * Istio `Gateway` and `VirtualService` objects (networking.istio.io v1alpha3,
 * v1beta1 and v1 share one spec) read into the gateway's own model. Pure: a
 * malformed object throws `GatewayResourceError` naming the field, and the
 * caller leaves that object out while everything else keeps serving.
 */
import type { KubeObject } from '../kube/types.ts'
import { Fields, headerOps } from './fields.ts'
import type { Json } from './fields.ts'

export type ServerProtocol = 'HTTP' | 'HTTPS' | 'HTTP2' | 'GRPC' | 'TCP' | 'TLS'
export type TlsMode = 'SIMPLE' | 'MUTUAL' | 'PASSTHROUGH'

/** A host a Gateway server admits: `namespace` filters the VirtualServices that may bind ('*' any, else one namespace). */
export interface ServerHost {
  namespace: string
  host: string
}

export interface ServerTls {
  mode: TlsMode
  /** Secret in the Gateway's namespace holding `tls.crt`, `tls.key` (and `ca.crt` for MUTUAL). */
  credentialName: string
  /** Node's names: 'TLSv1.2'; undefined leaves Node's default (1.2 to 1.3), not upstream's 1.0-only. */
  minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'
  maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'
  /** OpenSSL names, translated from Istio's (Go/IANA) names. */
  ciphers: string[]
  httpsRedirect: boolean
}

export interface GatewayServer {
  port: number
  protocol: ServerProtocol
  hosts: ServerHost[]
  tls: ServerTls | undefined
}

export interface IstioGateway {
  namespace: string
  name: string
  servers: GatewayServer[]
}

/** `pathPrefix` (Gateway API) matches whole path segments: `/foo` admits `/foo` and `/foo/x`, not `/foobar`. */
export type StringMatch = { kind: 'exact' | 'prefix' | 'pathPrefix', value: string } | { kind: 'regex', value: string, re: RegExp }

export interface HttpMatch {
  uri?: StringMatch
  method?: StringMatch
  authority?: StringMatch
  scheme?: StringMatch
  /** Lower-case header name → match; `present` matches any value. */
  headers: Array<{ name: string, match: StringMatch | 'present' }>
  withoutHeaders: Array<{ name: string, match: StringMatch | 'present' }>
  queryParams: Array<{ name: string, match: StringMatch | 'present' }>
  port?: number
  ignoreUriCase: boolean
  /** `namespace/name` of the gateways this match is limited to. */
  gateways: string[]
}

export interface Destination {
  /** `namespace/name` of the Service. */
  service: string
  /** Service port number; undefined when the Service has a single port. */
  port?: number
  subset?: string
  weight: number
  /** A reference that cannot be served (Gateway API: missing or not permitted); requests for it get 500. */
  invalid?: string
  /** Header edits for requests sent to this destination and its responses, before the route's own. */
  requestHeaders?: HeaderOps
  responseHeaders?: HeaderOps
}

/** A copy of a route's requests sent to another Service, its answers dropped (Istio `mirrors`, Gateway API `RequestMirror`). */
export interface Mirror {
  /** The Service the copies go to; `weight` is unused. */
  dest: Destination
  /** Share of the route's requests that are copied, 0 to 100. */
  percent: number
}

/** Istio `fault`: `delay` waits before the request goes on; `abort` answers it instead (`grpcStatus`: a gRPC status code). */
export interface Fault {
  delay?: { ms: number, percent: number }
  abort?: { httpStatus: number, percent: number } | { grpcStatus: number, percent: number }
}

/** CORS (Istio `corsPolicy`, Gateway API's CORS filter): which origins may call, and what preflights are answered with. */
export interface Cors {
  /** `*` (exact) admits every origin. */
  origins: StringMatch[]
  methods: string[]
  headers: string[]
  expose: string[]
  maxAgeSeconds?: number
  credentials: boolean
  /**
   * Preflights from origins not admitted are answered too, without CORS
   * headers (Gateway API); Istio's go to the backend.
   */
  allPreflights: boolean
}

/** gRPC status names, each at its code, as Istio's `abort.grpcStatus` takes them. */
const GRPC_CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED']

export interface HeaderOps {
  set: Array<[string, string]>
  add: Array<[string, string]>
  remove: string[]
}

export interface HttpRoute {
  /** `namespace/vs#index` or `namespace/vs#name`: the metrics label. */
  id: string
  match: HttpMatch[]
  route: Destination[]
  /**
   * `authority` replaces host and port (Istio); `hostname` only the host, and
   * with a `scheme` but no `port` the port is the scheme's own (Gateway API).
   * `fullPath`: `uri` replaces the whole path even after a prefix match.
   * `listenerPort`: the port is the one the request came in on (Gateway API without scheme and port).
   */
  redirect?: { uri?: string, fullPath?: boolean, authority?: string, hostname?: string, scheme?: string, port?: number, listenerPort?: boolean, code: number }
  rewrite?: { uri?: string, fullPath?: boolean, authority?: string }
  requestHeaders: HeaderOps
  responseHeaders: HeaderOps
  timeoutMs?: number
  retries?: { attempts: number, perTryTimeoutMs?: number, retryOn: string[] }
  /** Copies of each request (sampled by `percent`) to other Services; their answers are dropped. */
  mirrors?: Mirror[]
  /** Istio's fault injection: a delay before forwarding, then an abort, each on a share of the requests. */
  fault?: Fault
  /** Istio's `corsPolicy`, or the Gateway API's CORS filter. */
  cors?: Cors
  /** Istio's `directResponse`: answered by the gateway with this status and body. */
  direct?: { status: number, body: Buffer }
  /** Gateway API routes are ordered by match precedence across routes, lowest first; Istio's keep their order, ahead of them. */
  precedence?: number
  /** `namespace/name` of the VirtualService whose routes take this one's place (istio-delegate.ts). */
  delegate?: string
}

export interface L4Route {
  id: string
  /** Match on the Gateway port, the SNI names (TLS) and the gateways; empty: every connection. */
  match: Array<{ port?: number, sniHosts: string[], gateways: string[] }>
  route: Destination[]
}

export interface VirtualService {
  namespace: string
  name: string
  /** Creation time in ms: Istio merges routes of several VirtualServices oldest first. */
  created: number
  hosts: string[]
  /** `namespace/name`; `mesh` entries are dropped (not a gateway). */
  gateways: string[]
  http: HttpRoute[]
  tcp: L4Route[]
  tls: L4Route[]
}

const PROTOCOLS: readonly ServerProtocol[] = ['HTTP', 'HTTPS', 'HTTP2', 'GRPC', 'TCP', 'TLS']
const TLS_VERSIONS: Record<string, ServerTls['minVersion']> = { TLSV1_0: 'TLSv1', TLSV1_1: 'TLSv1.1', TLSV1_2: 'TLSv1.2', TLSV1_3: 'TLSv1.3' }
/** Istio's cipher names (Go's, IANA style) → OpenSSL's. TLS 1.3 suites are not configurable, as in Envoy. */
const CIPHERS: Record<string, string> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA'
}
function metaOf (obj: KubeObject): { namespace: string, name: string } {
  return { namespace: obj.metadata.namespace ?? 'default', name: obj.metadata.name }
}

/** `name` → `namespace/name` in the VirtualService's namespace; `ns/name` kept; `mesh` is not a gateway. */
function gatewayRefs (f: Fields, v: unknown, path: string, namespace: string): string[] {
  return f.list(v, path).flatMap((g, i) => {
    const s = f.string(g, `${path}[${i}]`) ?? ''
    if (s === '' || s === 'mesh') return []
    // Istio also accepts the FQDN form `name.namespace.svc.cluster.local`.
    if (!s.includes('/') && s.includes('.')) {
      const [name, ns] = s.split('.')
      return [`${ns ?? namespace}/${name ?? s}`]
    }
    return [s.includes('/') ? s : `${namespace}/${s}`]
  })
}

export function parseGateway (obj: KubeObject): IstioGateway {
  const { namespace, name } = metaOf(obj)
  const f = new Fields(`Gateway ${namespace}/${name}`)
  const spec = f.object((obj as unknown as Json).spec, 'spec')
  const servers = f.list(spec.servers, 'spec.servers').map((raw, i): GatewayServer => {
    const path = `spec.servers[${i}]`
    const s = f.object(raw, path)
    const p = f.object(s.port, `${path}.port`)
    const port = f.port(p.number, `${path}.port.number`) ?? f.fail(`${path}.port.number`, 'is required')
    const protocol = (f.string(p.protocol, `${path}.port.protocol`) ?? 'HTTP').toUpperCase()
    if (!PROTOCOLS.includes(protocol as ServerProtocol)) f.fail(`${path}.port.protocol`, `"${protocol}" is not one of ${PROTOCOLS.join(', ')}`)
    const hosts = f.list(s.hosts, `${path}.hosts`).map((h, j): ServerHost => {
      const text = f.string(h, `${path}.hosts[${j}]`) ?? ''
      const slash = text.indexOf('/')
      const ns = slash < 0 ? '*' : text.slice(0, slash)
      const host = (slash < 0 ? text : text.slice(slash + 1)).toLowerCase()
      if (host === '') f.fail(`${path}.hosts[${j}]`, 'has no host')
      return { namespace: ns === '.' ? namespace : ns, host }
    })
    if (hosts.length === 0) f.fail(`${path}.hosts`, 'must name at least one host (`*` for any)')
    return { port, protocol: protocol as ServerProtocol, hosts, tls: parseServerTls(f, s.tls, `${path}.tls`, protocol as ServerProtocol) }
  })
  return { namespace, name, servers }
}

function parseServerTls (f: Fields, v: unknown, path: string, protocol: ServerProtocol): ServerTls | undefined {
  if (v === undefined || v === null) {
    if (protocol === 'HTTPS') f.fail(path, 'is required for an HTTPS server')
    return undefined
  }
  const t = f.object(v, path)
  const credentialName = f.string(t.credentialName, `${path}.credentialName`) ?? ''
  const httpsRedirect = t.httpsRedirect === true
  // Upstream terminates TLS whenever credentialName is set, whatever the mode: its examples depend on it.
  let mode = (f.string(t.mode, `${path}.mode`) ?? (credentialName !== '' ? 'SIMPLE' : '')).toUpperCase()
  if (mode === '' && httpsRedirect) return { mode: 'SIMPLE', credentialName, ciphers: [], httpsRedirect }
  if (mode === 'ISTIO_MUTUAL' || mode === 'OPTIONAL_MUTUAL') f.fail(`${path}.mode`, `${mode} needs Istio's own certificates; use SIMPLE or MUTUAL with credentialName`)
  if (mode === 'AUTO_PASSTHROUGH') mode = 'PASSTHROUGH'
  if (mode !== 'SIMPLE' && mode !== 'MUTUAL' && mode !== 'PASSTHROUGH') f.fail(`${path}.mode`, `"${mode}" is not SIMPLE, MUTUAL or PASSTHROUGH`)
  if (mode !== 'PASSTHROUGH' && credentialName === '') f.fail(`${path}.credentialName`, `is required for mode ${mode} (certificate files are not read; name a kubernetes.io/tls Secret)`)
  const version = (key: 'minProtocolVersion' | 'maxProtocolVersion'): ServerTls['minVersion'] => {
    const s = f.string(t[key], `${path}.${key}`)
    if (s === undefined || s === 'TLS_AUTO') return undefined
    return TLS_VERSIONS[s] ?? f.fail(`${path}.${key}`, `"${s}" is not TLS_AUTO or TLSV1_0 to TLSV1_3`)
  }
  const ciphers = f.list(t.cipherSuites, `${path}.cipherSuites`).flatMap((c, i) => {
    const s = f.string(c, `${path}.cipherSuites[${i}]`) ?? ''
    const openssl = CIPHERS[s] ?? (/^[A-Z0-9-]+$/.test(s) ? s : undefined)
    return openssl === undefined ? [] : [openssl]
  })
  const out: ServerTls = { mode, credentialName, ciphers, httpsRedirect }
  const min = version('minProtocolVersion')
  const max = version('maxProtocolVersion')
  if (min !== undefined) out.minVersion = min
  if (max !== undefined) out.maxVersion = max
  return out
}

/** One `destination` (host, port.number, subset) of a route or a mirror. */
function destination (f: Fields, v: unknown, path: string, namespace: string, weight: number): Destination {
  const d = f.object(v, path)
  const host = f.string(d.host, `${path}.host`) ?? f.fail(`${path}.host`, 'is required')
  const port = f.port(f.object(d.port, `${path}.port`).number, `${path}.port.number`)
  const out: Destination = { service: serviceOf(host, namespace), weight }
  if (port !== undefined) out.port = port
  const subset = f.string(d.subset, `${path}.subset`)
  if (subset !== undefined && subset !== '') out.subset = subset
  return out
}

function destinations (f: Fields, v: unknown, path: string, namespace: string): Destination[] {
  const list = f.list(v, path)
  const out = list.map((raw, i): Destination => {
    const r = f.object(raw, `${path}[${i}]`)
    const weight = r.weight === undefined ? (list.length === 1 ? 100 : 0) : r.weight
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0) f.fail(`${path}[${i}].weight`, 'must be a non-negative integer')
    const d = destination(f, r.destination, `${path}[${i}].destination`, namespace, weight)
    if (r.headers !== undefined && r.headers !== null) {
      const h = f.object(r.headers, `${path}[${i}].headers`)
      d.requestHeaders = headerOps(f, h.request, `${path}[${i}].headers.request`)
      d.responseHeaders = headerOps(f, h.response, `${path}[${i}].headers.response`)
    }
    return d
  })
  if (out.length > 1 && out.every(d => d.weight === 0)) for (const d of out) d.weight = 1
  return out
}

/** Istio's `Percent` (`{value: 12.5}`); absent is 100. */
function percentage (f: Fields, v: unknown, path: string): number {
  if (v === undefined || v === null) return 100
  const value = f.object(v, path).value ?? 0
  if (typeof value !== 'number' || !(value >= 0 && value <= 100)) f.fail(`${path}.value`, 'must be a number from 0 to 100')
  return value
}

/** A fault's share: `percentage.value`, or the older integer `percent`; neither means none, as Istio documents. */
function faultPercent (f: Fields, o: Json, path: string): number {
  if (o.percentage !== undefined && o.percentage !== null) return percentage(f, o.percentage, `${path}.percentage`)
  if (o.percent === undefined || o.percent === null) return 0
  if (typeof o.percent !== 'number' || !Number.isInteger(o.percent) || o.percent < 0 || o.percent > 100) f.fail(`${path}.percent`, 'must be an integer from 0 to 100')
  return o.percent
}

/**
 * Istio's `fault`: `delay.fixedDelay`, `abort.httpStatus` or `abort.grpcStatus`. `abort.http2Error` is refused, as
 * Istio's own validation refuses it ("not supported yet"); so is a delay without `fixedDelay` (Istio never
 * implemented `exponentialDelay`).
 */
function faultOf (f: Fields, v: unknown, path: string): Fault | undefined {
  if (v === undefined || v === null) return undefined
  const o = f.object(v, path)
  const out: Fault = {}
  if (o.delay !== undefined && o.delay !== null) {
    const d = f.object(o.delay, `${path}.delay`)
    const ms = f.durationMs(d.fixedDelay, `${path}.delay.fixedDelay`) ?? f.fail(`${path}.delay.fixedDelay`, 'is required (exponentialDelay is not supported)')
    out.delay = { ms, percent: faultPercent(f, d, `${path}.delay`) }
  }
  if (o.abort !== undefined && o.abort !== null) {
    const a = f.object(o.abort, `${path}.abort`)
    const percent = faultPercent(f, a, `${path}.abort`)
    if (a.httpStatus !== undefined && a.httpStatus !== null) {
      if (typeof a.httpStatus !== 'number' || !Number.isInteger(a.httpStatus) || a.httpStatus < 200 || a.httpStatus > 599) f.fail(`${path}.abort.httpStatus`, 'must be an HTTP status from 200 to 599')
      out.abort = { httpStatus: a.httpStatus, percent }
    } else if (a.grpcStatus !== undefined && a.grpcStatus !== null) {
      const name = f.string(a.grpcStatus, `${path}.abort.grpcStatus`) ?? ''
      const code = GRPC_CODES.indexOf(name.toUpperCase())
      if (code < 0) f.fail(`${path}.abort.grpcStatus`, `"${name}" is not a gRPC status name like UNAVAILABLE`)
      out.abort = { grpcStatus: code, percent }
    } else if (a.http2Error !== undefined && a.http2Error !== null) {
      f.fail(`${path}.abort.http2Error`, 'is not supported (Istio refuses it too); use httpStatus or grpcStatus')
    }
    // An abort with no error type aborts nothing (Istio accepts it with a warning).
  }
  return out.delay === undefined && out.abort === undefined ? undefined : out
}

/** Istio's `corsPolicy`: `allowOrigins` (string matches; the older `allowOrigin` list is exact names), methods, headers, exposed headers, `maxAge`, `allowCredentials`. */
function corsOf (f: Fields, v: unknown, path: string): Cors | undefined {
  if (v === undefined || v === null) return undefined
  const o = f.object(v, path)
  const names = (key: string): string[] => f.tokens(o[key], `${path}.${key}`)
  const origins = [
    ...f.list(o.allowOrigins, `${path}.allowOrigins`).map((m, i) => f.stringMatch(m, `${path}.allowOrigins[${i}]`) ?? f.fail(`${path}.allowOrigins[${i}]`, 'needs exact, prefix or regex')),
    ...names('allowOrigin').map((value): StringMatch => ({ kind: 'exact', value }))
  ]
  const out: Cors = { origins, methods: names('allowMethods'), headers: names('allowHeaders'), expose: names('exposeHeaders'), credentials: o.allowCredentials === true, allPreflights: false }
  const maxAge = f.durationMs(o.maxAge, `${path}.maxAge`)
  if (maxAge !== undefined) out.maxAgeSeconds = Math.floor(maxAge / 1000)
  return out
}

/** `mirror` with `mirrorPercentage` (or the older `mirrorPercent`), or the list `mirrors`; not both. */
function mirrorsOf (f: Fields, h: Json, path: string, namespace: string): Mirror[] {
  const list = f.list(h.mirrors, `${path}.mirrors`)
  if (h.mirror === undefined || h.mirror === null) {
    return list.map((raw, i) => {
      const m = f.object(raw, `${path}.mirrors[${i}]`)
      return { dest: destination(f, m.destination, `${path}.mirrors[${i}].destination`, namespace, 0), percent: percentage(f, m.percentage, `${path}.mirrors[${i}].percentage`) }
    })
  }
  if (list.length > 0) f.fail(`${path}.mirrors`, 'cannot be set together with mirror')
  let percent = percentage(f, h.mirrorPercentage, `${path}.mirrorPercentage`)
  if ((h.mirrorPercentage === undefined || h.mirrorPercentage === null) && h.mirrorPercent !== undefined && h.mirrorPercent !== null) {
    if (typeof h.mirrorPercent !== 'number' || !Number.isInteger(h.mirrorPercent) || h.mirrorPercent < 0 || h.mirrorPercent > 100) f.fail(`${path}.mirrorPercent`, 'must be an integer from 0 to 100')
    percent = h.mirrorPercent
  }
  return [{ dest: destination(f, h.mirror, `${path}.mirror`, namespace, 0), percent }]
}

/** `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.<domain>` → `ns/svc`; a bare name is in the VirtualService's namespace. */
export function serviceOf (host: string, namespace: string): string {
  const parts = host.toLowerCase().split('.')
  return parts.length === 1 ? `${namespace}/${parts[0] ?? host}` : `${parts[1] ?? namespace}/${parts[0] ?? host}`
}

function keyedMatches (f: Fields, v: unknown, path: string): Array<{ name: string, match: StringMatch | 'present' }> {
  return Object.entries(f.object(v, path)).map(([name, m]) => ({ name: name.toLowerCase(), match: f.stringMatch(m, `${path}.${name}`) ?? 'present' }))
}

function parseHttpRoute (f: Fields, raw: unknown, path: string, vs: { namespace: string, name: string }, index: number): HttpRoute {
  const h = f.object(raw, path)
  const routeName = f.string(h.name, `${path}.name`)
  const match = f.list(h.match, `${path}.match`).map((m, j): HttpMatch => {
    const mp = `${path}.match[${j}]`
    const o = f.object(m, mp)
    const out: HttpMatch = {
      headers: keyedMatches(f, o.headers, `${mp}.headers`),
      withoutHeaders: keyedMatches(f, o.withoutHeaders, `${mp}.withoutHeaders`),
      queryParams: keyedMatches(f, o.queryParams, `${mp}.queryParams`),
      ignoreUriCase: o.ignoreUriCase === true,
      gateways: gatewayRefs(f, o.gateways, `${mp}.gateways`, vs.namespace)
    }
    for (const key of ['uri', 'method', 'authority', 'scheme'] as const) {
      const sm = f.stringMatch(o[key], `${mp}.${key}`)
      if (sm !== undefined) out[key] = sm
    }
    const port = f.port(o.port, `${mp}.port`)
    if (port !== undefined) out.port = port
    return out
  })
  const route: HttpRoute = {
    id: `${vs.namespace}/${vs.name}#${routeName ?? index}`,
    match,
    route: destinations(f, h.route, `${path}.route`, vs.namespace),
    requestHeaders: headerOps(f, f.object(h.headers, `${path}.headers`).request, `${path}.headers.request`),
    responseHeaders: headerOps(f, f.object(h.headers, `${path}.headers`).response, `${path}.headers.response`)
  }
  if (h.redirect !== undefined && h.redirect !== null) {
    const r = f.object(h.redirect, `${path}.redirect`)
    const code = r.redirectCode ?? 301
    if (typeof code !== 'number' || code < 300 || code > 399) f.fail(`${path}.redirect.redirectCode`, 'must be a 3xx status')
    route.redirect = { code }
    const uri = f.string(r.uri, `${path}.redirect.uri`)
    const authority = f.string(r.authority, `${path}.redirect.authority`)
    const scheme = f.string(r.scheme, `${path}.redirect.scheme`)
    const port = f.port(r.port, `${path}.redirect.port`)
    if (uri !== undefined) route.redirect.uri = uri
    if (authority !== undefined) route.redirect.authority = authority
    if (scheme !== undefined) route.redirect.scheme = scheme
    if (port !== undefined) route.redirect.port = port
  }
  if (h.directResponse !== undefined && h.directResponse !== null) {
    if (route.redirect !== undefined || route.route.length > 0) f.fail(`${path}.directResponse`, 'cannot be set together with route or redirect')
    const d = f.object(h.directResponse, `${path}.directResponse`)
    if (typeof d.status !== 'number' || !Number.isInteger(d.status) || d.status < 200 || d.status > 599) f.fail(`${path}.directResponse.status`, 'must be an HTTP status from 200 to 599')
    const b = f.object(d.body, `${path}.directResponse.body`)
    const text = f.string(b.string, `${path}.directResponse.body.string`)
    const bytes = f.string(b.bytes, `${path}.directResponse.body.bytes`)
    if (text !== undefined && bytes !== undefined) f.fail(`${path}.directResponse.body`, 'holds string and bytes; set one')
    const body = text !== undefined ? Buffer.from(text) : Buffer.from(bytes ?? '', 'base64')
    // Envoy's limit for a direct response body.
    if (body.length > 4096) f.fail(`${path}.directResponse.body`, 'is longer than 4096 bytes')
    route.direct = { status: d.status, body }
  }
  if (h.delegate !== undefined && h.delegate !== null) {
    if (route.redirect !== undefined || route.direct !== undefined || route.route.length > 0) f.fail(`${path}.delegate`, 'cannot be set together with route, redirect or directResponse')
    const d = f.object(h.delegate, `${path}.delegate`)
    const name = f.string(d.name, `${path}.delegate.name`) ?? f.fail(`${path}.delegate.name`, 'is required')
    route.delegate = `${f.string(d.namespace, `${path}.delegate.namespace`) ?? vs.namespace}/${name}`
  } else if (route.redirect === undefined && route.direct === undefined && route.route.length === 0) {
    f.fail(`${path}.route`, 'is required unless the route redirects, answers directly or delegates')
  }
  const mirrors = mirrorsOf(f, h, path, vs.namespace)
  if (mirrors.length > 0) route.mirrors = mirrors
  const fault = faultOf(f, h.fault, `${path}.fault`)
  if (fault !== undefined) route.fault = fault
  const cors = corsOf(f, h.corsPolicy, `${path}.corsPolicy`)
  if (cors !== undefined) route.cors = cors
  if (h.rewrite !== undefined && h.rewrite !== null) {
    const r = f.object(h.rewrite, `${path}.rewrite`)
    route.rewrite = {}
    const uri = f.string(r.uri, `${path}.rewrite.uri`)
    const authority = f.string(r.authority, `${path}.rewrite.authority`)
    if (uri !== undefined) route.rewrite.uri = uri
    if (authority !== undefined) route.rewrite.authority = authority
  }
  const timeout = f.durationMs(h.timeout, `${path}.timeout`)
  if (timeout !== undefined) route.timeoutMs = timeout
  if (h.retries !== undefined && h.retries !== null) {
    const r = f.object(h.retries, `${path}.retries`)
    const attempts = r.attempts ?? 0
    if (typeof attempts !== 'number' || !Number.isInteger(attempts) || attempts < 0 || attempts > 10) f.fail(`${path}.retries.attempts`, 'must be an integer from 0 to 10')
    const retryOn = (f.string(r.retryOn, `${path}.retries.retryOn`) ?? 'connect-failure,refused-stream,unavailable,cancelled,503').split(',').map(s => s.trim()).filter(s => s !== '')
    route.retries = { attempts, retryOn }
    const perTry = f.durationMs(r.perTryTimeout, `${path}.retries.perTryTimeout`)
    if (perTry !== undefined) route.retries.perTryTimeoutMs = perTry
  }
  return route
}

function parseL4Route (f: Fields, raw: unknown, path: string, vs: { namespace: string, name: string }, index: number): L4Route {
  const t = f.object(raw, path)
  const match = f.list(t.match, `${path}.match`).map((m, j) => {
    const mp = `${path}.match[${j}]`
    const o = f.object(m, mp)
    const out: L4Route['match'][number] = {
      sniHosts: f.list(o.sniHosts, `${mp}.sniHosts`).map((s, k) => (f.string(s, `${mp}.sniHosts[${k}]`) ?? '').toLowerCase()),
      gateways: gatewayRefs(f, o.gateways, `${mp}.gateways`, vs.namespace)
    }
    const port = f.port(o.port, `${mp}.port`)
    if (port !== undefined) out.port = port
    return out
  })
  const route = destinations(f, t.route, `${path}.route`, vs.namespace)
  if (route.length === 0) f.fail(`${path}.route`, 'needs at least one destination')
  return { id: `${vs.namespace}/${vs.name}#${path.startsWith('spec.tls') ? 'tls' : 'tcp'}${index}`, match, route }
}

export function parseVirtualService (obj: KubeObject): VirtualService {
  const meta = metaOf(obj)
  const f = new Fields(`VirtualService ${meta.namespace}/${meta.name}`)
  const spec = f.object((obj as unknown as Json).spec, 'spec')
  const hosts = f.list(spec.hosts, 'spec.hosts').map((h, i) => (f.string(h, `spec.hosts[${i}]`) ?? '').toLowerCase())
  const gateways = gatewayRefs(f, spec.gateways, 'spec.gateways', meta.namespace)
  // Without hosts or gateways it is a delegate: its routes serve where a root VirtualService delegates to it.
  if (hosts.length === 0 && gateways.length > 0) f.fail('spec.hosts', 'must name at least one host (a delegate VirtualService sets neither hosts nor gateways)')
  const created = Date.parse(obj.metadata.creationTimestamp ?? '')
  return {
    ...meta,
    created: Number.isNaN(created) ? 0 : created,
    hosts,
    gateways,
    http: f.list(spec.http, 'spec.http').map((h, i) => parseHttpRoute(f, h, `spec.http[${i}]`, meta, i)),
    tcp: f.list(spec.tcp, 'spec.tcp').map((t, i) => parseL4Route(f, t, `spec.tcp[${i}]`, meta, i)),
    tls: f.list(spec.tls, 'spec.tls').map((t, i) => parseL4Route(f, t, `spec.tls[${i}]`, meta, i))
  }
}
