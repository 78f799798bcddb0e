/**
 * The values of Gateway API route filters (HTTPRoute and GRPCRoute): header
 * modifiers, path modifiers, RequestMirror's share and CORS, read into the
 * shared route model. The rules that hold them are read in gateway-api.ts.
 */
import type { Fields, Json } from './fields.ts'
import { headerOps } from './fields.ts'
import type { Cors, HeaderOps, StringMatch } from './istio.ts'

export function headerModifier (f: Fields, raw: unknown, path: string): HeaderOps {
  const o = f.object(raw, path)
  const pairs = (key: 'set' | 'add'): Record<string, string> => Object.fromEntries(f.list(o[key], `${path}.${key}`).map((h, i) => {
    const e = f.object(h, `${path}.${key}[${i}]`)
    return [f.string(e.name, `${path}.${key}[${i}].name`) ?? '', f.string(e.value, `${path}.${key}[${i}].value`) ?? '']
  }))
  return headerOps(f, { set: pairs('set'), add: pairs('add'), remove: o.remove }, path)
}

/** `path` of URLRewrite or RequestRedirect: the new path and whether it replaces all of it. */
export function pathModifier (f: Fields, raw: unknown, path: string): { uri: string, fullPath: boolean } | undefined {
  if (raw === undefined || raw === null) return undefined
  const o = f.object(raw, path)
  if (o.type === 'ReplaceFullPath') return { uri: f.string(o.replaceFullPath, `${path}.replaceFullPath`) ?? '/', fullPath: true }
  if (o.type === 'ReplacePrefixMatch') return { uri: f.string(o.replacePrefixMatch, `${path}.replacePrefixMatch`) ?? '/', fullPath: false }
  return f.fail(`${path}.type`, `"${String(o.type)}" is not ReplaceFullPath or ReplacePrefixMatch`)
}

/** RequestMirror's share: `percent` (0–100) or `fraction` (numerator over denominator, 100 by default); all when neither. */
export function mirrorPercent (f: Fields, o: Json, path: string): number {
  if (o.percent !== undefined && o.percent !== null) {
    if (o.fraction !== undefined && o.fraction !== null) f.fail(path, 'holds percent and fraction; set one')
    if (typeof o.percent !== 'number' || !Number.isInteger(o.percent) || o.percent < 0 || o.percent > 100) f.fail(`${path}.percent`, 'must be an integer from 0 to 100')
    return o.percent
  }
  if (o.fraction === undefined || o.fraction === null) return 100
  const fr = f.object(o.fraction, `${path}.fraction`)
  const num = fr.numerator
  const den = fr.denominator ?? 100
  if (typeof num !== 'number' || !Number.isInteger(num) || num < 0) f.fail(`${path}.fraction.numerator`, 'must be a non-negative integer')
  if (typeof den !== 'number' || !Number.isInteger(den) || den < 1 || num > den) f.fail(`${path}.fraction.denominator`, 'must be a positive integer not below the numerator')
  return num * 100 / den
}

/**
 * The CORS filter: origins `<scheme>://<host>[:<port>]` whose host may hold
 * `*` (any labels to its left), `*` alone for all; `*` in methods or headers
 * echoes what the preflight asks for; `maxAge` in seconds, 5 when absent
 * (the CRD's default).
 */
export function corsFilter (f: Fields, o: Json, path: string): Cors {
  const list = (key: string): string[] => f.tokens(o[key], `${path}.${key}`)
  const origins = list('allowOrigins').map((origin, i): StringMatch => origin === '*' || !origin.includes('*')
    ? { kind: 'exact', value: origin }
    : f.regex(escapeRegex(origin).replace(/\\\*/g, '.*'), `${path}.allowOrigins[${i}]`))
  const maxAge = o.maxAge ?? 5
  if (typeof maxAge !== 'number' || !Number.isInteger(maxAge) || maxAge < 0) f.fail(`${path}.maxAge`, 'must be a non-negative integer (seconds)')
  return { origins, methods: list('allowMethods'), headers: list('allowHeaders'), expose: list('exposeHeaders'), maxAgeSeconds: maxAge, credentials: o.allowCredentials === true, allPreflights: true }
}

export function escapeRegex (s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
