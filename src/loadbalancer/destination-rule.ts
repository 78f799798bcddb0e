/**
 * Istio DestinationRule (`networking.istio.io`, v1alpha3/v1beta1/v1) → the
 * load-balancing policy spec of each service port. Only the fields that
 * choose a policy are read: `spec.host`, `spec.trafficPolicy.loadBalancer`
 * and `spec.trafficPolicy.portLevelSettings[].{port.number, loadBalancer}`.
 * Subsets, connection pools, outlier detection, TLS, `localityLbSetting`,
 * `warmupDurationSecs` and the ring-size knobs of `consistentHash`
 * (`minimumRingSize`, `ringHash`, `maglev`) are ignored: the ring comes from
 * `modules.edgeProxy.loadBalancer.consistentHash`.
 */
import { LbInvalidRuleError, LbUnsupportedPolicyError } from './errors.ts'
import type { ServiceKey } from '../servicemap/types.ts'

export type HashKeySpec =
  | { type: 'header', name: string }
  /** `ttlSeconds`/`path` are for the proxy, which may issue the cookie; the balancer only reads it. */
  | { type: 'cookie', name: string, ttlSeconds?: number, path?: string }
  | { type: 'sourceIp' }

export type LbPolicySpec =
  | { type: 'ROUND_ROBIN' }
  | { type: 'RANDOM' }
  | { type: 'CONSISTENT_HASH', key: HashKeySpec }

export interface DestinationRule {
  namespace: string
  name: string
  host: string
  /** The Service `spec.host` names, or undefined when it names none (wildcard, external host). */
  hostService: ServiceKey | undefined
  /** `trafficPolicy.loadBalancer`; undefined when absent or `UNSPECIFIED`. */
  policy: LbPolicySpec | undefined
  /** `portLevelSettings` by port number; an entry without `loadBalancer` is not listed (it inherits `policy`). */
  portPolicies: ReadonlyMap<number, LbPolicySpec>
}

export interface ParseRuleOptions {
  /** @default 'cluster.local' */
  clusterDomain?: string
}

const SUPPORTED_SIMPLE = new Set(['ROUND_ROBIN', 'RANDOM'])
const UNSUPPORTED_SIMPLE = new Set(['LEAST_REQUEST', 'LEAST_CONN', 'PASSTHROUGH'])

/**
 * The Service a DestinationRule host names, as Istio resolves it: a short
 * name `svc` is in the rule's namespace; `svc.ns`, `svc.ns.svc` and
 * `svc.ns.svc.<clusterDomain>` name `ns/svc`. Wildcards and other hosts
 * give undefined.
 */
export function hostToService (host: string, ruleNamespace: string, clusterDomain = 'cluster.local'): ServiceKey | undefined {
  const h = host.toLowerCase().replace(/\.$/, '')
  if (h === '' || h.includes('*')) return undefined
  const suffix = `.svc.${clusterDomain.toLowerCase()}`
  const rest = h.endsWith(suffix) ? h.slice(0, -suffix.length) : h.endsWith('.svc') ? h.slice(0, -4) : h
  const labels = rest.split('.')
  if (labels.some(l => l === '')) return undefined
  if (labels.length === 1) return `${ruleNamespace}/${labels[0] as string}`
  if (labels.length === 2) return `${labels[1] as string}/${labels[0] as string}`
  return undefined
}

/** The policy spec for one service port: the port-level setting, else the rule-level one. */
export function policyForPort (rule: DestinationRule, port: number): LbPolicySpec | undefined {
  return rule.portPolicies.get(port) ?? rule.policy
}

/** Whether a spec needs the HTTP request (header or cookie hash), i.e. cannot run in the kernel fast path. */
export function specNeedsHttp (spec: LbPolicySpec | undefined): boolean {
  return spec?.type === 'CONSISTENT_HASH' && (spec.key.type === 'header' || spec.key.type === 'cookie')
}

/**
 * Parses a DestinationRule object (as the API server returns it).
 * @throws LbInvalidRuleError for a malformed object
 * @throws LbUnsupportedPolicyError for a policy this agent cannot apply
 */
export function parseDestinationRule (obj: unknown, options: ParseRuleOptions = {}): DestinationRule {
  const top = asRecord(obj)
  const meta = asRecord(top?.metadata)
  const namespace = meta?.namespace
  const name = meta?.name
  if (typeof namespace !== 'string' || namespace === '' || typeof name !== 'string' || name === '') {
    throw new LbInvalidRuleError('', 'metadata', 'namespace and name are required')
  }
  const id = `${namespace}/${name}`
  const apiVersion = top?.apiVersion
  if (apiVersion !== undefined && (typeof apiVersion !== 'string' || !apiVersion.startsWith('networking.istio.io/'))) {
    throw new LbInvalidRuleError(id, 'apiVersion', `expected networking.istio.io/*, got ${JSON.stringify(apiVersion)}`)
  }
  if (top?.kind !== undefined && top.kind !== 'DestinationRule') {
    throw new LbInvalidRuleError(id, 'kind', `expected DestinationRule, got ${JSON.stringify(top.kind)}`)
  }
  const spec = record(id, 'spec', top?.spec, true)
  const host = spec.host
  if (typeof host !== 'string' || host === '') throw new LbInvalidRuleError(id, 'spec.host', 'a non-empty string is required')
  const tp = record(id, 'spec.trafficPolicy', spec.trafficPolicy, false)
  const policy = parseLoadBalancer(id, 'spec.trafficPolicy.loadBalancer', tp.loadBalancer)
  const portPolicies = new Map<number, LbPolicySpec>()
  const pls = tp.portLevelSettings
  if (pls !== undefined && pls !== null) {
    if (!Array.isArray(pls)) throw new LbInvalidRuleError(id, 'spec.trafficPolicy.portLevelSettings', 'must be a list')
    const seen = new Set<number>()
    pls.forEach((item: unknown, i: number) => {
      const path = `spec.trafficPolicy.portLevelSettings[${i}]`
      const entry = record(id, path, item, true)
      const number = asRecord(entry.port)?.number
      if (typeof number !== 'number' || !Number.isInteger(number) || number < 1 || number > 65535) {
        throw new LbInvalidRuleError(id, `${path}.port.number`, `a port number 1-65535 is required, got ${JSON.stringify(number)}`)
      }
      if (seen.has(number)) throw new LbInvalidRuleError(id, `${path}.port.number`, `port ${number} is listed twice`)
      seen.add(number)
      const p = parseLoadBalancer(id, `${path}.loadBalancer`, entry.loadBalancer)
      if (p !== undefined) portPolicies.set(number, p)
    })
  }
  return { namespace, name, host, hostService: hostToService(host, namespace, options.clusterDomain), policy, portPolicies }
}

function parseLoadBalancer (id: string, path: string, value: unknown): LbPolicySpec | undefined {
  if (value === undefined || value === null) return undefined
  const lb = record(id, path, value, true)
  const hasSimple = lb.simple !== undefined && lb.simple !== null
  const hasHash = lb.consistentHash !== undefined && lb.consistentHash !== null
  if (hasSimple && hasHash) throw new LbInvalidRuleError(id, path, 'simple and consistentHash are mutually exclusive')
  if (hasSimple) {
    const simple = lb.simple
    if (typeof simple !== 'string') throw new LbInvalidRuleError(id, `${path}.simple`, 'must be a string')
    if (simple === 'UNSPECIFIED') return undefined
    if (SUPPORTED_SIMPLE.has(simple)) return { type: simple as 'ROUND_ROBIN' | 'RANDOM' }
    if (UNSUPPORTED_SIMPLE.has(simple)) throw new LbUnsupportedPolicyError(id, `simple: ${simple} (at ${path}.simple)`)
    throw new LbInvalidRuleError(id, `${path}.simple`, `unknown policy ${JSON.stringify(simple)}`)
  }
  if (hasHash) return { type: 'CONSISTENT_HASH', key: parseHashKey(id, `${path}.consistentHash`, lb.consistentHash) }
  return undefined
}

function parseHashKey (id: string, path: string, value: unknown): HashKeySpec {
  const ch = record(id, path, value, true)
  const keys: HashKeySpec[] = []
  if (ch.httpHeaderName !== undefined) {
    if (typeof ch.httpHeaderName !== 'string' || ch.httpHeaderName === '') throw new LbInvalidRuleError(id, `${path}.httpHeaderName`, 'a non-empty string is required')
    keys.push({ type: 'header', name: ch.httpHeaderName.toLowerCase() })
  }
  if (ch.httpCookie !== undefined) {
    const c = record(id, `${path}.httpCookie`, ch.httpCookie, true)
    if (typeof c.name !== 'string' || c.name === '') throw new LbInvalidRuleError(id, `${path}.httpCookie.name`, 'a non-empty string is required')
    const key: HashKeySpec = { type: 'cookie', name: c.name }
    if (c.ttl !== undefined) key.ttlSeconds = parseDurationSeconds(id, `${path}.httpCookie.ttl`, c.ttl)
    if (c.path !== undefined) {
      if (typeof c.path !== 'string') throw new LbInvalidRuleError(id, `${path}.httpCookie.path`, 'must be a string')
      key.path = c.path
    }
    keys.push(key)
  }
  if (ch.useSourceIp !== undefined) {
    if (typeof ch.useSourceIp !== 'boolean') throw new LbInvalidRuleError(id, `${path}.useSourceIp`, 'must be a boolean')
    if (ch.useSourceIp) keys.push({ type: 'sourceIp' })
  }
  if (ch.httpQueryParameterName !== undefined) throw new LbUnsupportedPolicyError(id, `consistentHash.httpQueryParameterName (at ${path})`)
  if (keys.length > 1) throw new LbInvalidRuleError(id, path, 'httpHeaderName, httpCookie and useSourceIp are mutually exclusive')
  const key = keys[0]
  if (key === undefined) throw new LbInvalidRuleError(id, path, 'no hash key: set httpHeaderName, httpCookie or useSourceIp: true')
  return key
}

const DURATION_UNITS_S: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }

/** A protobuf/Go duration (`"0s"`, `"3.5s"`, `"1h30m"`) in seconds. */
function parseDurationSeconds (id: string, path: string, value: unknown): number {
  if (typeof value !== 'string' || !/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value)) {
    throw new LbInvalidRuleError(id, path, `a duration such as "10s" or "1h" is required, got ${JSON.stringify(value)}`)
  }
  let seconds = 0
  for (const m of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) seconds += Number(m[1]) * (DURATION_UNITS_S[m[2] as string] as number)
  return seconds
}

function asRecord (value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
}

function record (id: string, path: string, value: unknown, required: boolean): Record<string, unknown> {
  if (value === undefined || value === null) {
    if (required) throw new LbInvalidRuleError(id, path, 'is required')
    return {}
  }
  const r = asRecord(value)
  if (r === undefined) throw new LbInvalidRuleError(id, path, 'must be an object')
  return r
}
