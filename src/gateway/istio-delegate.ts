/**
 * Istio's delegate VirtualServices: a root VirtualService (bound to
 * gateways, with hosts) hands an HTTP route to another VirtualService that
 * has neither hosts nor gateways (`http[].delegate: {name, namespace}`),
 * usually owned by another team. The delegate's routes take the root
 * route's place, each with its matches narrowed by the root route's: a
 * delegate match must fall within one of them, or the delegate route is not
 * served (Istio calls that a conflict). What the delegate route leaves unset
 * (rewrite, timeout, retries, fault, mirrors, CORS, headers) it takes from
 * the root route. One level only, as in Istio. Pure.
 */
import type { HttpMatch, HttpRoute, StringMatch, VirtualService } from './istio.ts'

type Keyed = HttpMatch['headers']

/** Istio's test: the delegate's match must lie within the root's; undefined on either side never conflicts. */
function stringConflict (root: StringMatch | undefined, leaf: StringMatch | undefined): boolean {
  if (root === undefined || leaf === undefined) return false
  if (root.kind === 'regex' || leaf.kind === 'regex') return true
  if (root.kind === 'exact') return !(leaf.kind === 'exact' && leaf.value === root.value)
  // A root prefix admits a leaf prefix or exact value that starts with it.
  return !leaf.value.startsWith(root.value)
}

function keyedConflict (root: Keyed, leaf: Keyed): boolean {
  return leaf.some(l => {
    const r = root.find(x => x.name === l.name)
    if (r === undefined) return false
    if (r.match === 'present' || l.match === 'present') return r.match !== l.match
    return stringConflict(r.match, l.match)
  })
}

function conflicts (root: HttpMatch, leaf: HttpMatch): boolean {
  return (['uri', 'scheme', 'method', 'authority'] as const).some(k => stringConflict(root[k], leaf[k])) ||
    keyedConflict(root.headers, leaf.headers) || keyedConflict(root.withoutHeaders, leaf.withoutHeaders) ||
    keyedConflict(root.queryParams, leaf.queryParams) || root.ignoreUriCase !== leaf.ignoreUriCase ||
    (root.port !== undefined && leaf.port !== undefined && root.port !== leaf.port)
}

/** The leaf's conditions, with the root's added where the leaf has none; gateways are the root's. */
function merge (root: HttpMatch, leaf: HttpMatch): HttpMatch {
  const keyed = (r: Keyed, l: Keyed): Keyed => [...l, ...r.filter(x => !l.some(y => y.name === x.name))]
  const out: HttpMatch = {
    headers: keyed(root.headers, leaf.headers),
    withoutHeaders: keyed(root.withoutHeaders, leaf.withoutHeaders),
    queryParams: keyed(root.queryParams, leaf.queryParams),
    ignoreUriCase: leaf.ignoreUriCase,
    gateways: root.gateways
  }
  for (const k of ['uri', 'scheme', 'method', 'authority'] as const) {
    const m = leaf[k] ?? root[k]
    if (m !== undefined) out[k] = m
  }
  const port = leaf.port ?? root.port
  if (port !== undefined) out.port = port
  return out
}

/** Each delegate match merged with every root match it fits in; undefined when one fits in none. */
function mergeMatches (root: HttpMatch[], leaf: HttpMatch[]): HttpMatch[] | undefined {
  if (root.length === 0) return leaf
  if (leaf.length === 0) return root
  const out: HttpMatch[] = []
  for (const l of leaf) {
    const fits = root.filter(r => !conflicts(r, l))
    if (fits.length === 0) return undefined
    for (const r of fits) out.push(merge(r, l))
  }
  return out
}

const noHeaders = (h: HttpRoute['requestHeaders']): boolean => h.set.length === 0 && h.add.length === 0 && h.remove.length === 0

/** The delegate route in the root route's place (Istio's mergeHTTPRoute). */
function mergeRoute (root: HttpRoute, leaf: HttpRoute): HttpRoute | undefined {
  const match = mergeMatches(root.match, leaf.match)
  if (match === undefined) return undefined
  const out: HttpRoute = { ...leaf, match }
  if (out.rewrite === undefined && root.rewrite !== undefined) out.rewrite = root.rewrite
  if (out.timeoutMs === undefined && root.timeoutMs !== undefined) out.timeoutMs = root.timeoutMs
  if (out.retries === undefined && root.retries !== undefined) out.retries = root.retries
  if (out.fault === undefined && root.fault !== undefined) out.fault = root.fault
  if (out.mirrors === undefined && root.mirrors !== undefined) out.mirrors = root.mirrors
  if (out.cors === undefined && root.cors !== undefined) out.cors = root.cors
  if (noHeaders(out.requestHeaders) && noHeaders(out.responseHeaders)) {
    out.requestHeaders = root.requestHeaders
    out.responseHeaders = root.responseHeaders
  }
  return out
}

/**
 * Every root VirtualService with its delegated routes put in place; the
 * delegates themselves (no hosts) are left out, as they bind to nothing.
 * `problems` names each route that is not served and why.
 */
export function resolveDelegates (virtualServices: readonly VirtualService[]): { virtualServices: VirtualService[], problems: string[] } {
  const byKey = new Map(virtualServices.map(vs => [`${vs.namespace}/${vs.name}`, vs]))
  const problems: string[] = []
  const out: VirtualService[] = []
  const delegatedTo = new Set<string>()
  for (const vs of virtualServices) {
    if (vs.hosts.length === 0) continue
    if (!vs.http.some(r => r.delegate !== undefined)) { out.push(vs); continue }
    const http = vs.http.flatMap((root, i): HttpRoute[] => {
      if (root.delegate === undefined) return [root]
      const where = `VirtualService ${vs.namespace}/${vs.name}: spec.http[${i}].delegate`
      delegatedTo.add(root.delegate)
      const target = byKey.get(root.delegate)
      if (target === undefined) { problems.push(`${where}: VirtualService ${root.delegate} does not exist`); return [] }
      if (target.hosts.length > 0 || target.gateways.length > 0) { problems.push(`${where}: VirtualService ${root.delegate} sets hosts or gateways; a delegate sets neither`); return [] }
      return target.http.flatMap((leaf, j) => {
        if (leaf.delegate !== undefined) { problems.push(`${where}: VirtualService ${root.delegate} spec.http[${j}] delegates again; one level only`); return [] }
        const merged = mergeRoute(root, leaf)
        if (merged === undefined) problems.push(`${where}: VirtualService ${root.delegate} spec.http[${j}].match is not within the root route's match; that route is not served`)
        return merged === undefined ? [] : [merged]
      })
    })
    out.push({ ...vs, http })
  }
  // Before, a VirtualService without hosts was rejected; one that nothing delegates to says so.
  for (const [key, vs] of byKey) {
    if (vs.hosts.length === 0 && vs.http.length > 0 && !delegatedTo.has(key)) problems.push(`VirtualService ${key}: has no hosts, and no VirtualService delegates to it; its routes are not served`)
  }
  return { virtualServices: out, problems }
}
