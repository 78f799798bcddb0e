/**
 * The Kubernetes Gateway API (gateway.networking.k8s.io v1: GatewayClass,
 * Gateway, HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, ReferenceGrant) read into
 * the gateway's own model: each accepted listener becomes an Istio-style
 * server under the key `namespace/gateway/listener`, each route a
 * VirtualService bound to the listeners it attached to. The route table then
 * serves both APIs the same way. Pure: the conditions the user should see on
 * each object come out beside the model (gateway-api-status.ts writes them).
 */
import type { KubeObject } from '../kube/types.ts'
import { byCodeUnits } from '../order.ts'
import type { Destination, GatewayServer, HttpMatch, HttpRoute, IstioGateway, L4Route, StringMatch, VirtualService } from './istio.ts'
import { GatewayResourceError } from './errors.ts'
import { hostMatches, SCHEME_PORTS } from './route-table.ts'
import { Fields } from './fields.ts'
import { corsFilter, escapeRegex, headerModifier, mirrorPercent, pathModifier } from './gateway-api-filters.ts'
import type { Json } from './fields.ts'

/** The `controllerName` a GatewayClass names for its Gateways to be served here. */
export const CONTROLLER_NAME = 'edgemesh.kubeedge.io/gateway-controller'
export const GROUP = 'gateway.networking.k8s.io'

export type RouteKind = 'HTTPRoute' | 'GRPCRoute' | 'TLSRoute' | 'TCPRoute'

export interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason: string
  message: string
}

export interface ListenerStatus {
  name: string
  supportedKinds: Array<{ group: string, kind: RouteKind }>
  attachedRoutes: number
  conditions: Condition[]
  /** The model's key for this listener, when it is served: `namespace/gateway/listener`. */
  key: string | undefined
  port: number
}

export interface GatewayStatusDraft {
  object: KubeObject
  conditions: Condition[]
  listeners: ListenerStatus[]
}

export interface RouteParentStatus {
  parentRef: { group: string, kind: string, namespace: string, name: string, sectionName?: string, port?: number }
  conditions: Condition[]
}

export interface GatewayApiObjects {
  classes: readonly KubeObject[]
  gateways: readonly KubeObject[]
  routes: ReadonlyArray<{ kind: RouteKind, objects: readonly KubeObject[] }>
  grants: readonly KubeObject[]
  /** Namespace labels, for `allowedRoutes.namespaces.from: Selector`; undefined when namespaces are not watched. */
  namespaceLabels: (namespace: string) => Record<string, string> | undefined
  /** Whether a Service `namespace/name` exists. */
  serviceExists: (key: string) => boolean
  /** Why the Secret `namespace/name` cannot serve as a certificate, or undefined when it can. */
  secretProblem: (key: string) => string | undefined
}

export interface GatewayApiModel {
  gateways: IstioGateway[]
  virtualServices: VirtualService[]
  /** GatewayClasses with our controllerName, by name: always Accepted (nothing in their spec is ours to refuse). */
  classes: KubeObject[]
  gatewayStatus: GatewayStatusDraft[]
  /** Our entries of each route's `status.parents`, by `Kind namespace/name`; empty lists too, to clear stale entries. */
  routeStatus: Map<string, { kind: RouteKind, object: KubeObject, parents: RouteParentStatus[] }>
}

const cond = (type: string, ok: boolean, reason: string, message: string): Condition => ({ type, status: ok ? 'True' : 'False', reason, message })

/** Route kinds a listener protocol admits when `allowedRoutes.kinds` is empty. */
const DEFAULT_KINDS: Record<string, RouteKind[]> = {
  HTTP: ['HTTPRoute', 'GRPCRoute'],
  HTTPS: ['HTTPRoute', 'GRPCRoute'],
  TLS: ['TLSRoute'],
  TCP: ['TCPRoute']
}

interface Listener {
  name: string
  port: number
  protocol: string
  hostname: string | undefined
  /** Whether TLS is terminated here, passed through, or absent: listeners sharing a port must agree. */
  tls: 'terminate' | 'passthrough' | 'none'
  kinds: RouteKind[]
  /** Which namespaces' routes may attach. */
  admits: (namespace: string) => boolean
  /** Served when `status.key` is set; a listener that clashed with an earlier one is listed, unserved. */
  status: ListenerStatus
}

/** A ReferenceGrant index: may an object of `fromKind` in `fromNs` refer to `toKind` `toName` in `toNs`? */
class Grants {
  readonly #grants: Array<{ ns: string, from: Array<{ group: string, kind: string, namespace: string }>, to: Array<{ group: string, kind: string, name?: string }> }> = []
  constructor (objects: readonly KubeObject[]) {
    for (const o of objects) {
      const spec = ((o as unknown as Json).spec ?? {}) as Json
      const list = (v: unknown): Json[] => Array.isArray(v) ? v.filter((x): x is Json => typeof x === 'object' && x !== null) : []
      this.#grants.push({
        ns: o.metadata.namespace ?? 'default',
        from: list(spec.from).map(f => ({ group: String(f.group ?? ''), kind: String(f.kind ?? ''), namespace: String(f.namespace ?? '') })),
        to: list(spec.to).map(t => ({ group: String(t.group ?? ''), kind: String(t.kind ?? ''), ...(typeof t.name === 'string' && t.name !== '' ? { name: t.name } : {}) }))
      })
    }
  }

  permits (from: { group: string, kind: string, namespace: string }, to: { group: string, kind: string, namespace: string, name: string }): boolean {
    if (from.namespace === to.namespace) return true
    return this.#grants.some(g => g.ns === to.namespace &&
      g.from.some(f => f.group === from.group && f.kind === from.kind && f.namespace === from.namespace) &&
      g.to.some(t => t.group === to.group && t.kind === to.kind && (t.name === undefined || t.name === to.name)))
  }
}

function metaOf (o: KubeObject): { namespace: string, name: string, created: number } {
  const created = Date.parse(o.metadata.creationTimestamp ?? '')
  return { namespace: o.metadata.namespace ?? 'default', name: o.metadata.name, created: Number.isNaN(created) ? 0 : created }
}

/** `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist) of a label selector. */
function selectorMatches (f: Fields, selector: Json, path: string, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(f.object(selector.matchLabels, `${path}.matchLabels`))) if (labels[k] !== v) return false
  return f.list(selector.matchExpressions, `${path}.matchExpressions`).every((raw, i) => {
    const e = f.object(raw, `${path}.matchExpressions[${i}]`)
    const key = f.string(e.key, `${path}.matchExpressions[${i}].key`) ?? ''
    const values = f.list(e.values, `${path}.matchExpressions[${i}].values`).map(String)
    switch (e.operator) {
      case 'In': return labels[key] !== undefined && values.includes(labels[key])
      case 'NotIn': return labels[key] === undefined || !values.includes(labels[key])
      case 'Exists': return labels[key] !== undefined
      case 'DoesNotExist': return labels[key] === undefined
      default: return f.fail(`${path}.matchExpressions[${i}].operator`, `"${String(e.operator)}" is not In, NotIn, Exists or DoesNotExist`)
    }
  })
}

/** Reads one Gateway's listeners, with their conditions; the listeners that can be served become servers. */
function readGateway (o: KubeObject, input: GatewayApiObjects, grants: Grants): { draft: GatewayStatusDraft, listeners: Listener[], servers: IstioGateway[] } {
  const { namespace, name } = metaOf(o)
  const f = new Fields(`Gateway ${namespace}/${name}`)
  const draft: GatewayStatusDraft = { object: o, conditions: [], listeners: [] }
  const listeners: Listener[] = []
  const servers: IstioGateway[] = []
  let spec: Json
  let raws: unknown[]
  try {
    spec = f.object((o as unknown as Json).spec, 'spec')
    raws = f.list(spec.listeners, 'spec.listeners')
    if (raws.length === 0) f.fail('spec.listeners', 'must hold at least one listener')
  } catch (err) {
    draft.conditions.push(cond('Accepted', false, 'Invalid', (err as Error).message), cond('Programmed', false, 'Invalid', 'the Gateway is not valid'))
    return { draft, listeners, servers }
  }
  const seen = new Map<number, Listener[]>()
  raws.forEach((raw, i) => {
    const path = `spec.listeners[${i}]`
    const l = f.object(raw, path)
    const lname = typeof l.name === 'string' ? l.name : `listener-${i}`
    const status: ListenerStatus = { name: lname, supportedKinds: [], attachedRoutes: 0, conditions: [], key: undefined, port: typeof l.port === 'number' ? l.port : 0 }
    draft.listeners.push(status)
    const refuse = (type: string, reason: string, message: string): void => {
      status.conditions = [cond('Accepted', type !== 'Accepted', type === 'Accepted' ? reason : 'Accepted', type === 'Accepted' ? message : 'listener accepted'),
        cond('ResolvedRefs', type !== 'ResolvedRefs', type === 'ResolvedRefs' ? reason : 'ResolvedRefs', type === 'ResolvedRefs' ? message : 'references resolved'),
        cond('Programmed', false, 'Invalid', message)]
    }
    try {
      const port = f.port(l.port, `${path}.port`) ?? f.fail(`${path}.port`, 'is required')
      const protocol = f.string(l.protocol, `${path}.protocol`) ?? f.fail(`${path}.protocol`, 'is required')
      const hostname = f.string(l.hostname, `${path}.hostname`)?.toLowerCase()
      if (DEFAULT_KINDS[protocol] === undefined) { refuse('Accepted', 'UnsupportedProtocol', `${path}.protocol ${protocol} is not served (HTTP, HTTPS, TLS and TCP are)`); return }
      // Kinds: the listed ones this protocol can carry; none listed means the protocol's defaults.
      const allowed = f.object(l.allowedRoutes, `${path}.allowedRoutes`)
      const listed = f.list(allowed.kinds, `${path}.allowedRoutes.kinds`).map((k, j) => f.object(k, `${path}.allowedRoutes.kinds[${j}]`))
      const defaults = DEFAULT_KINDS[protocol] ?? []
      const kinds = listed.length === 0 ? defaults : defaults.filter(k => listed.some(x => x.kind === k && (x.group ?? GROUP) === GROUP))
      const invalidKinds = listed.filter(x => !defaults.includes(x.kind as RouteKind) || (x.group ?? GROUP) !== GROUP).map(x => String(x.kind))
      status.supportedKinds = kinds.map(kind => ({ group: GROUP, kind }))
      const from = f.object(allowed.namespaces, `${path}.allowedRoutes.namespaces`)
      const fromKind = f.string(from.from, `${path}.allowedRoutes.namespaces.from`) ?? 'Same'
      let admits: (ns: string) => boolean
      if (fromKind === 'Same') admits = ns => ns === namespace
      else if (fromKind === 'All') admits = () => true
      else if (fromKind === 'Selector') {
        const selector = f.object(from.selector, `${path}.allowedRoutes.namespaces.selector`)
        selectorMatches(f, selector, `${path}.allowedRoutes.namespaces.selector`, {})
        admits = ns => { const labels = input.namespaceLabels(ns); return labels !== undefined && selectorMatches(f, selector, '', labels) }
      } else return f.fail(`${path}.allowedRoutes.namespaces.from`, `"${fromKind}" is not Same, All or Selector`)

      let credentialName = ''
      let tlsMode: 'SIMPLE' | 'PASSTHROUGH' | undefined
      if (protocol === 'HTTPS' || protocol === 'TLS') {
        const t = f.object(l.tls, `${path}.tls`)
        const mode = f.string(t.mode, `${path}.tls.mode`) ?? 'Terminate'
        if (mode !== 'Terminate' && mode !== 'Passthrough') f.fail(`${path}.tls.mode`, `"${mode}" is not Terminate or Passthrough`)
        if (protocol === 'HTTPS' && mode === 'Passthrough') f.fail(`${path}.tls.mode`, 'Passthrough needs protocol TLS')
        tlsMode = mode === 'Passthrough' ? 'PASSTHROUGH' : 'SIMPLE'
        if (tlsMode === 'SIMPLE') {
          const refs = f.list(t.certificateRefs, `${path}.tls.certificateRefs`)
          if (refs.length === 0) { refuse('ResolvedRefs', 'InvalidCertificateRef', `${path}.tls.certificateRefs must name a Secret`); return }
          const ref = f.object(refs[0], `${path}.tls.certificateRefs[0]`)
          const refNs = f.string(ref.namespace, `${path}.tls.certificateRefs[0].namespace`) ?? namespace
          const refName = f.string(ref.name, `${path}.tls.certificateRefs[0].name`) ?? ''
          if ((ref.group ?? '') !== '' || (ref.kind ?? 'Secret') !== 'Secret') { refuse('ResolvedRefs', 'InvalidCertificateRef', `${path}.tls.certificateRefs[0] must be a core Secret`); return }
          if (!grants.permits({ group: GROUP, kind: 'Gateway', namespace }, { group: '', kind: 'Secret', namespace: refNs, name: refName })) {
            refuse('ResolvedRefs', 'RefNotPermitted', `Secret ${refNs}/${refName} is in another namespace and no ReferenceGrant there allows this Gateway to use it`)
            return
          }
          const problem = input.secretProblem(`${refNs}/${refName}`)
          if (problem !== undefined) { refuse('ResolvedRefs', 'InvalidCertificateRef', `Secret ${refNs}/${refName}: ${problem}`); return }
          credentialName = `${refNs}/${refName}`
        }
      }
      const listener: Listener = { name: lname, port, protocol, hostname, tls: tlsMode === undefined ? 'none' : tlsMode === 'PASSTHROUGH' ? 'passthrough' : 'terminate', kinds, admits, status }
      // Within one Gateway a port carries one protocol, and a hostname once.
      const same = seen.get(port) ?? []
      const clash = same.find(x => x.protocol !== protocol || x.tls !== listener.tls)
      const dup = same.find(x => x.hostname === hostname)
      seen.set(port, [...same, listener])
      if (clash !== undefined || dup !== undefined) {
        status.conditions = [cond('Accepted', false, 'PortUnavailable', 'the port is taken by an earlier listener'),
          cond('Conflicted', true, clash !== undefined ? 'ProtocolConflict' : 'HostnameConflict', `listener ${(clash ?? dup)?.name ?? ''} already serves port ${port}${clash !== undefined ? ` with ${clash.protocol}` : ' for this hostname'}`),
          cond('ResolvedRefs', true, 'ResolvedRefs', 'references resolved'),
          cond('Programmed', false, 'Invalid', 'conflicts with an earlier listener')]
        listeners.push(listener)
        return
      }
      status.conditions = [cond('Accepted', true, 'Accepted', 'listener accepted'), cond('Conflicted', false, 'NoConflicts', 'no conflicts'),
        invalidKinds.length > 0 ? cond('ResolvedRefs', false, 'InvalidRouteKinds', `route kinds ${invalidKinds.join(', ')} are not served on a ${protocol} listener`) : cond('ResolvedRefs', true, 'ResolvedRefs', 'references resolved')]
      status.key = `${namespace}/${name}/${lname}`
      const server: GatewayServer = {
        port,
        protocol: protocol === 'HTTPS' ? 'HTTPS' : protocol as GatewayServer['protocol'],
        hosts: [{ namespace: '*', host: hostname ?? '*' }],
        tls: tlsMode === undefined ? undefined : { mode: tlsMode, credentialName, ciphers: [], httpsRedirect: false }
      }
      servers.push({ namespace, name: `${name}/${lname}`, servers: [server] })
      listeners.push(listener)
    } catch (err) {
      if (!(err instanceof GatewayResourceError)) throw err
      refuse('Accepted', 'Invalid', err.message)
    }
  })
  const ok = draft.listeners.some(l => l.key !== undefined)
  draft.conditions.push(ok ? cond('Accepted', true, 'Accepted', 'served by edgemesh-gateway') : cond('Accepted', false, 'ListenersNotValid', 'no listener can be served'))
  return { draft, listeners, servers }
}

/** Gateway API durations: `1h`, `30s`, `500ms`, `1m30s` (GEP-2257); `0s` is no timeout. */
function durationMs (f: Fields, v: unknown, path: string): number | undefined {
  const s = f.string(v, path)
  if (s === undefined) return undefined
  if (!/^(?:\d{1,5}(?:h|m|s|ms)){1,4}$/.test(s)) f.fail(path, `"${s}" is not a duration like 500ms, 10s or 1m30s`)
  let ms = 0
  for (const [, n, unit] of s.matchAll(/(\d+)(ms|h|m|s)/g)) ms += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h']
  return ms === 0 ? undefined : ms
}

function stringMatch (f: Fields, type: unknown, value: unknown, path: string, exactName = 'Exact'): StringMatch {
  const t = (f.string(type, `${path}.type`) ?? exactName)
  const v = f.string(value, `${path}.value`) ?? f.fail(`${path}.value`, 'is required')
  if (t === exactName) return { kind: 'exact', value: v }
  if (t !== 'RegularExpression') f.fail(`${path}.type`, `"${t}" is not ${exactName} or RegularExpression`)
  return f.regex(v, `${path}.value`)
}

interface ParsedRule {
  matches: HttpMatch[]
  /** Everything of the route but its id, matches and precedence. */
  action: Omit<HttpRoute, 'id' | 'match' | 'precedence'>
  name: string
  /** Why some backend references cannot be served (ResolvedRefs=False), reason first. */
  refProblems: Array<{ reason: string, message: string }>
}

/** One backend reference (of backendRefs or RequestMirror) as a destination; a refused one is marked `invalid` and its reason recorded. */
function backendRef (f: Fields, raw: unknown, p: string, route: { kind: RouteKind, namespace: string }, input: GatewayApiObjects, grants: Grants, problems: ParsedRule['refProblems'], weight: number): Destination {
  const b = f.object(raw, p)
  const name = f.string(b.name, `${p}.name`) ?? f.fail(`${p}.name`, 'is required')
  const ns = f.string(b.namespace, `${p}.namespace`) ?? route.namespace
  const port = f.port(b.port, `${p}.port`)
  const dest: Destination = { service: `${ns}/${name}`, weight }
  const refuse = (reason: string, message: string): Destination => { problems.push({ reason, message }); return { ...dest, invalid: message } }
  if ((b.group ?? '') !== '' || (b.kind ?? 'Service') !== 'Service') return refuse('InvalidKind', `${p}: ${String(b.group ?? '')}/${String(b.kind)} is not a Service`)
  if (port === undefined) return refuse('UnsupportedValue', `${p}.port is required for a Service`)
  if (!grants.permits({ group: GROUP, kind: route.kind, namespace: route.namespace }, { group: '', kind: 'Service', namespace: ns, name })) {
    return refuse('RefNotPermitted', `${p}: Service ${ns}/${name} is in another namespace and no ReferenceGrant there allows it`)
  }
  if (!input.serviceExists(`${ns}/${name}`)) return refuse('BackendNotFound', `${p}: Service ${ns}/${name} not found`)
  dest.port = port
  return dest
}

/** Resolves backendRefs to destinations; refused references stay, with their weight, answered 500 as the spec asks. */
function backends (f: Fields, raw: unknown, path: string, route: { kind: RouteKind, namespace: string }, input: GatewayApiObjects, grants: Grants, problems: ParsedRule['refProblems']): Destination[] {
  return f.list(raw, path).map((r, i) => {
    const p = `${path}[${i}]`
    const b = f.object(r, p)
    const weight = b.weight ?? 1
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > 1_000_000) f.fail(`${p}.weight`, 'must be an integer from 0 to 1000000')
    const dest = backendRef(f, b, p, route, input, grants, problems, weight)
    f.list(b.filters, `${p}.filters`).forEach((raw, j) => {
      const fp = `${p}.filters[${j}]`
      const filter = f.object(raw, fp)
      if (filter.type === 'RequestHeaderModifier') dest.requestHeaders = headerModifier(f, filter.requestHeaderModifier, `${fp}.requestHeaderModifier`)
      else if (filter.type === 'ResponseHeaderModifier') dest.responseHeaders = headerModifier(f, filter.responseHeaderModifier, `${fp}.responseHeaderModifier`)
      else f.fail(`${fp}.type`, `"${String(filter.type)}" is not supported on a backendRef (RequestHeaderModifier and ResponseHeaderModifier are; put others on the rule)`)
    })
    return dest
  })
}

function parseHttpRule (f: Fields, raw: unknown, path: string, kind: 'HTTPRoute' | 'GRPCRoute', route: { namespace: string }, input: GatewayApiObjects, grants: Grants, index: number): ParsedRule {
  const r = f.object(raw, path)
  const refProblems: ParsedRule['refProblems'] = []
  const matches = f.list(r.matches, `${path}.matches`).map((m, j): HttpMatch => {
    const mp = `${path}.matches[${j}]`
    const o = f.object(m, mp)
    const out: HttpMatch = { headers: [], withoutHeaders: [], queryParams: [], ignoreUriCase: false, gateways: [] }
    if (kind === 'HTTPRoute') {
      if (o.path !== undefined && o.path !== null) {
        const p = f.object(o.path, `${mp}.path`)
        const value = f.string(p.value, `${mp}.path.value`) ?? '/'
        if (!value.startsWith('/')) f.fail(`${mp}.path.value`, 'must start with /')
        const type = f.string(p.type, `${mp}.path.type`) ?? 'PathPrefix'
        if (type === 'PathPrefix') out.uri = { kind: 'pathPrefix', value: value.length > 1 ? value.replace(/\/+$/, '') : value }
        else out.uri = stringMatch(f, type, value, `${mp}.path`)
      } else out.uri = { kind: 'pathPrefix', value: '/' }
      const method = f.string(o.method, `${mp}.method`)
      if (method !== undefined) out.method = { kind: 'exact', value: method }
      out.queryParams = f.list(o.queryParams, `${mp}.queryParams`).map((q, k) => {
        const e = f.object(q, `${mp}.queryParams[${k}]`)
        return { name: f.string(e.name, `${mp}.queryParams[${k}].name`) ?? '', match: stringMatch(f, e.type, e.value, `${mp}.queryParams[${k}]`) }
      })
    } else {
      const gm = f.object(o.method, `${mp}.method`)
      const service = f.string(gm.service, `${mp}.method.service`)
      const method = f.string(gm.method, `${mp}.method.method`)
      if ((gm.type ?? 'Exact') === 'RegularExpression') out.uri = f.regex(`/${service ?? '[^/]+'}/${method ?? '[^/]+'}`, `${mp}.method`)
      else if (service !== undefined || method !== undefined) {
        out.uri = service !== undefined && method !== undefined ? { kind: 'exact', value: `/${service}/${method}` } : service !== undefined ? { kind: 'prefix', value: `/${service}/` } : f.regex(`/[^/]+/${escapeRegex(method ?? '')}`, `${mp}.method`)
      }
    }
    out.headers = f.list(o.headers, `${mp}.headers`).map((h, k) => {
      const e = f.object(h, `${mp}.headers[${k}]`)
      return { name: (f.string(e.name, `${mp}.headers[${k}].name`) ?? '').toLowerCase(), match: stringMatch(f, e.type, e.value, `${mp}.headers[${k}]`) }
    })
    return out
  })
  if (matches.length === 0) matches.push({ headers: [], withoutHeaders: [], queryParams: [], ignoreUriCase: false, gateways: [], ...(kind === 'HTTPRoute' ? { uri: { kind: 'pathPrefix' as const, value: '/' } } : {}) })
  const action: ParsedRule['action'] = {
    route: backends(f, r.backendRefs, `${path}.backendRefs`, { kind, namespace: route.namespace }, input, grants, refProblems),
    requestHeaders: { set: [], add: [], remove: [] },
    responseHeaders: { set: [], add: [], remove: [] }
  }
  f.list(r.filters, `${path}.filters`).forEach((raw, j) => {
    const fp = `${path}.filters[${j}]`
    const filter = f.object(raw, fp)
    switch (filter.type) {
      case 'RequestHeaderModifier': action.requestHeaders = headerModifier(f, filter.requestHeaderModifier, `${fp}.requestHeaderModifier`); break
      case 'ResponseHeaderModifier': action.responseHeaders = headerModifier(f, filter.responseHeaderModifier, `${fp}.responseHeaderModifier`); break
      case 'RequestRedirect': {
        if (kind !== 'HTTPRoute') f.fail(`${fp}.type`, 'RequestRedirect is for HTTPRoutes')
        const o = f.object(filter.requestRedirect, `${fp}.requestRedirect`)
        const code = o.statusCode ?? 302
        if (code !== 301 && code !== 302) f.fail(`${fp}.requestRedirect.statusCode`, 'must be 301 or 302')
        action.redirect = { code }
        const scheme = f.string(o.scheme, `${fp}.requestRedirect.scheme`)
        const hostname = f.string(o.hostname, `${fp}.requestRedirect.hostname`)
        const port = f.port(o.port, `${fp}.requestRedirect.port`)
        const p = pathModifier(f, o.path, `${fp}.requestRedirect.path`)
        if (scheme !== undefined) action.redirect.scheme = scheme
        if (hostname !== undefined) action.redirect.hostname = hostname
        // A new scheme without a port takes the scheme's own port.
        if (port !== undefined || scheme !== undefined) action.redirect.port = port ?? SCHEME_PORTS[scheme ?? ''] ?? 80
        else action.redirect.listenerPort = true
        if (p !== undefined) { action.redirect.uri = p.uri; action.redirect.fullPath = p.fullPath }
        break
      }
      case 'URLRewrite': {
        if (kind !== 'HTTPRoute') f.fail(`${fp}.type`, 'URLRewrite is for HTTPRoutes')
        const o = f.object(filter.urlRewrite, `${fp}.urlRewrite`)
        const hostname = f.string(o.hostname, `${fp}.urlRewrite.hostname`)
        const p = pathModifier(f, o.path, `${fp}.urlRewrite.path`)
        action.rewrite = { ...(hostname !== undefined ? { authority: hostname } : {}), ...(p !== undefined ? { uri: p.uri, fullPath: p.fullPath } : {}) }
        break
      }
      case 'RequestMirror': {
        const o = f.object(filter.requestMirror, `${fp}.requestMirror`)
        if (o.backendRef === undefined || o.backendRef === null) f.fail(`${fp}.requestMirror.backendRef`, 'is required')
        const dest = backendRef(f, o.backendRef, `${fp}.requestMirror.backendRef`, { kind, namespace: route.namespace }, input, grants, refProblems, 0)
        // A reference that cannot be served mirrors nothing; ResolvedRefs says why.
        const percent = mirrorPercent(f, o, `${fp}.requestMirror`)
        if (dest.invalid === undefined) (action.mirrors ??= []).push({ dest, percent })
        break
      }
      case 'CORS': {
        if (kind !== 'HTTPRoute') f.fail(`${fp}.type`, 'CORS is for HTTPRoutes')
        action.cors = corsFilter(f, f.object(filter.cors, `${fp}.cors`), `${fp}.cors`)
        break
      }
      default: f.fail(`${fp}.type`, `"${String(filter.type)}" is not supported (RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror and CORS are)`)
    }
  })
  if (action.redirect !== undefined && action.route.length > 0) f.fail(`${path}.filters`, 'RequestRedirect cannot be combined with backendRefs')
  // No backend at all (and no redirect): the spec asks for 500.
  if (action.redirect === undefined && action.route.every(d => d.weight === 0)) action.route = [{ service: '', weight: 1, invalid: 'the rule has no backend with a weight' }]
  const timeouts = f.object(r.timeouts, `${path}.timeouts`)
  const request = durationMs(f, timeouts.request, `${path}.timeouts.request`)
  const backendRequest = durationMs(f, timeouts.backendRequest, `${path}.timeouts.backendRequest`)
  if (request !== undefined) action.timeoutMs = request
  if (backendRequest !== undefined) action.retries = { attempts: 0, perTryTimeoutMs: backendRequest, retryOn: [] }
  return { matches, action, name: f.string(r.name, `${path}.name`) ?? String(index), refProblems }
}

/**
 * Gateway API's order between matches of all routes of a hostname: exact
 * paths, then longer prefixes, then a method, more headers, more query
 * parameters; then the older route, then `namespace/name`, then rule and
 * match order. Negative where `a` goes first.
 */
function byPrecedence (a: { m: HttpMatch, created: number, key: string, rule: number, index: number }, b: typeof a): number {
  const rank = (m: HttpMatch): number => m.uri?.kind === 'exact' ? 2 : m.uri?.kind === 'regex' ? 1 : 0
  const prefixLength = (m: HttpMatch): number => m.uri?.kind === 'pathPrefix' || m.uri?.kind === 'prefix' ? m.uri.value.length : 0
  return rank(b.m) - rank(a.m) ||
    prefixLength(b.m) - prefixLength(a.m) ||
    Number(b.m.method !== undefined) - Number(a.m.method !== undefined) ||
    b.m.headers.length - a.m.headers.length ||
    b.m.queryParams.length - a.m.queryParams.length ||
    a.created - b.created ||
    byCodeUnits(a.key, b.key) ||
    a.rule - b.rule ||
    a.index - b.index
}

/** Hostnames a route and a listener both admit: the listener's when only it narrows, the route's otherwise. */
function sharedHostnames (listener: string | undefined, route: readonly string[]): string[] {
  if (listener === undefined) return route.length === 0 ? ['*'] : [...route]
  if (route.length === 0) return [listener]
  return route.filter(h => hostMatches(listener, h) || hostMatches(h, listener)).map(h => h.startsWith('*') && !listener.startsWith('*') ? listener : h)
}

/** Reads every Gateway API object into servers, VirtualServices and the status each object should show. */
export function translateGatewayApi (input: GatewayApiObjects): GatewayApiModel {
  const grants = new Grants(input.grants)
  const classes = input.classes.filter(c => ((c as unknown as Json).spec as Json | undefined)?.controllerName === CONTROLLER_NAME)
  const ours = new Set(classes.map(c => c.metadata.name))
  const model: GatewayApiModel = { gateways: [], virtualServices: [], classes, gatewayStatus: [], routeStatus: new Map() }
  const listenersOf = new Map<string, Listener[]>()
  for (const g of input.gateways) {
    if (!ours.has(String(((g as unknown as Json).spec as Json | undefined)?.gatewayClassName ?? ''))) continue
    const { draft, listeners, servers } = readGateway(g, input, grants)
    model.gatewayStatus.push(draft)
    model.gateways.push(...servers)
    listenersOf.set(`${metaOf(g).namespace}/${g.metadata.name}`, listeners)
  }

  const ranked: Array<{ route: HttpRoute, m: HttpMatch, created: number, key: string, rule: number, index: number }> = []
  for (const { kind, objects } of input.routes) {
    for (const o of objects) {
      const meta = metaOf(o)
      const key = `${meta.namespace}/${meta.name}`
      const f = new Fields(`${kind} ${key}`)
      const spec = ((o as unknown as Json).spec ?? {}) as Json
      const refs = Array.isArray(spec.parentRefs) ? spec.parentRefs.filter((r): r is Json => typeof r === 'object' && r !== null) : []
      // Parents that are our Gateways; a route naming none of them is another controller's.
      const parents = refs.flatMap(ref => {
        if ((ref.group ?? GROUP) !== GROUP || (ref.kind ?? 'Gateway') !== 'Gateway') return []
        const gw = `${String(ref.namespace ?? meta.namespace)}/${String(ref.name)}`
        const listeners = listenersOf.get(gw)
        if (listeners === undefined) return []
        const parentRef: RouteParentStatus['parentRef'] = { group: GROUP, kind: 'Gateway', namespace: String(ref.namespace ?? meta.namespace), name: String(ref.name) }
        if (typeof ref.sectionName === 'string') parentRef.sectionName = ref.sectionName
        if (typeof ref.port === 'number') parentRef.port = ref.port
        return [{ parentRef, listeners }]
      })
      if (parents.length === 0) {
        model.routeStatus.set(`${kind} ${key}`, { kind, object: o, parents: [] })
        continue
      }
      const statuses: RouteParentStatus[] = []
      model.routeStatus.set(`${kind} ${key}`, { kind, object: o, parents: statuses })
      let vs: VirtualService
      let refProblems: ParsedRule['refProblems'] = []
      let hostnames: string[]
      let rules: ParsedRule[] = []
      try {
        hostnames = kind === 'TCPRoute' ? [] : f.list(spec.hostnames, 'spec.hostnames').map((h, i) => (f.string(h, `spec.hostnames[${i}]`) ?? '').toLowerCase())
        vs = { namespace: meta.namespace, name: `${kind}/${meta.name}`, created: meta.created, hosts: hostnames.length === 0 ? ['*'] : hostnames, gateways: [], http: [], tcp: [], tls: [] }
        const rawRules = f.list(spec.rules, 'spec.rules')
        if (kind === 'HTTPRoute' || kind === 'GRPCRoute') {
          rules = rawRules.map((r, i) => parseHttpRule(f, r, `spec.rules[${i}]`, kind, meta, input, grants, i))
          refProblems = rules.flatMap(r => r.refProblems)
          rules.forEach((rule, ri) => rule.matches.forEach((m, mi) => {
            const route: HttpRoute = { id: `${key}#${rule.name}`, match: [m], ...rule.action }
            vs.http.push(route)
            ranked.push({ route, m, created: meta.created, key, rule: ri, index: mi })
          }))
          if (rawRules.length === 0) f.fail('spec.rules', 'must hold at least one rule')
        } else {
          rawRules.forEach((r, i) => {
            const route = backends(f, f.object(r, `spec.rules[${i}]`).backendRefs, `spec.rules[${i}].backendRefs`, { kind, namespace: meta.namespace }, input, grants, refProblems)
            const l4: L4Route = { id: `${key}#${i}`, match: [{ sniHosts: kind === 'TLSRoute' ? hostnames : [], gateways: [] }], route }
            if (route.length === 0) f.fail(`spec.rules[${i}].backendRefs`, 'must name at least one backend')
            vs.tls.push(l4)
            vs.tcp.push(l4)
          })
          if (rawRules.length === 0) f.fail('spec.rules', 'must hold at least one rule')
        }
      } catch (err) {
        if (!(err instanceof GatewayResourceError)) throw err
        for (const p of parents) statuses.push({ parentRef: p.parentRef, conditions: [cond('Accepted', false, 'UnsupportedValue', err.message), cond('ResolvedRefs', true, 'ResolvedRefs', 'not checked: the route is not accepted')] })
        continue
      }
      const resolved = refProblems.length === 0
        ? cond('ResolvedRefs', true, 'ResolvedRefs', 'every backend resolved')
        : cond('ResolvedRefs', false, refProblems[0]?.reason ?? 'BackendNotFound', refProblems.map(p => p.message).join('; '))
      for (const { parentRef, listeners } of parents) {
        const named = listeners.filter(l => (parentRef.sectionName === undefined || l.name === parentRef.sectionName) && (parentRef.port === undefined || l.port === parentRef.port))
        const served = named.filter(l => l.status.key !== undefined)
        const allowed = served.filter(l => l.kinds.includes(kind) && l.admits(meta.namespace))
        const fitting = allowed.filter(l => kind === 'TCPRoute' || sharedHostnames(l.hostname, hostnames).length > 0)
        let accepted: Condition
        if (named.length === 0) accepted = cond('Accepted', false, 'NoMatchingParent', `Gateway ${parentRef.namespace}/${parentRef.name} has no listener${parentRef.sectionName !== undefined ? ` ${parentRef.sectionName}` : ''}${parentRef.port !== undefined ? ` on port ${parentRef.port}` : ''}`)
        else if (allowed.length === 0) accepted = cond('Accepted', false, 'NotAllowedByListeners', `no listener of Gateway ${parentRef.namespace}/${parentRef.name} admits ${kind}s from namespace ${meta.namespace}`)
        else if (fitting.length === 0) accepted = cond('Accepted', false, 'NoMatchingListenerHostname', `no listener hostname of Gateway ${parentRef.namespace}/${parentRef.name} matches ${hostnames.join(', ')}`)
        else accepted = cond('Accepted', true, 'Accepted', `attached to ${fitting.map(l => l.name).join(', ')}`)
        statuses.push({ parentRef, conditions: [accepted, resolved] })
        for (const l of fitting) {
          l.status.attachedRoutes++
          const gkey = l.status.key as string
          if (!vs.gateways.includes(gkey)) vs.gateways.push(gkey)
        }
      }
      if (vs.gateways.length > 0) model.virtualServices.push(vs)
    }
  }
  ranked.sort(byPrecedence).forEach((r, i) => { r.route.precedence = i })
  return model
}
