/**
 * Reading fields of a Kubernetes object (Istio and Gateway API alike): each
 * helper names the field's path in the error it throws, so a rejected
 * resource tells its author what to fix.
 */
import { validateHeaderName, validateHeaderValue } from 'node:http'
import { GatewayResourceError } from './errors.ts'
import type { HeaderOps, StringMatch } from './istio.ts'

const MAX_REGEX = 1024

export type Json = Record<string, unknown>

/** Reads fields of one object, naming the path in every error. */
export class Fields {
  readonly #what: string
  constructor (what: string) { this.#what = what }

  fail (path: string, why: string): never {
    throw new GatewayResourceError(this.#what, path, why)
  }

  object (v: unknown, path: string): Json {
    if (v === undefined || v === null) return {}
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'must be an object')
    return v as Json
  }

  list (v: unknown, path: string): unknown[] {
    if (v === undefined || v === null) return []
    if (!Array.isArray(v)) this.fail(path, 'must be a list')
    return v
  }

  string (v: unknown, path: string): string | undefined {
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'string') this.fail(path, 'must be a string')
    return v
  }

  /** A list of tokens (header names, methods, origins) that go into response headers: no spaces or control characters. */
  tokens (v: unknown, path: string): string[] {
    return this.list(v, path).map((x, i) => {
      const t = this.string(x, `${path}[${i}]`) ?? ''
      if (!/^[\x21-\x7e]+$/.test(t)) this.fail(`${path}[${i}]`, 'must be a token without spaces or control characters')
      return t
    })
  }

  port (v: unknown, path: string): number | undefined {
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) this.fail(path, 'must be a port number (1-65535)')
    return v
  }

  durationMs (v: unknown, path: string): number | undefined {
    const s = this.string(v, path)
    if (s === undefined) return undefined
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s)
    if (m === null) this.fail(path, `"${s}" is not a duration like 500ms, 5s or 1m`)
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']
    return Number(m[1]) * unit
  }

  stringMatch (v: unknown, path: string): StringMatch | undefined {
    const o = this.object(v, path)
    const keys = Object.keys(o).filter(k => o[k] !== undefined && o[k] !== null)
    if (keys.length === 0) return undefined
    if (keys.length > 1) this.fail(path, `holds ${keys.join(' and ')}; one of exact, prefix or regex`)
    const kind = keys[0] as string
    const value = this.string(o[kind], `${path}.${kind}`) ?? ''
    if (kind === 'exact' || kind === 'prefix') return { kind, value }
    if (kind !== 'regex') this.fail(path, `"${kind}" is not exact, prefix or regex`)
    return this.regex(value, `${path}.regex`)
  }

  /** A regular expression that must match the whole value, as in Envoy (Istio) and the Gateway API. */
  regex (value: string, path: string): StringMatch {
    if (value.length > MAX_REGEX) this.fail(path, `is longer than ${MAX_REGEX} characters`)
    try {
      return { kind: 'regex', value, re: new RegExp(`^(?:${value})$`, 'u') }
    } catch (err) {
      this.fail(path, `is not a valid regular expression (${(err as Error).message})`)
    }
  }
}

export function headerOps (f: Fields, v: unknown, path: string): HeaderOps {
  const o = f.object(v, path)
  const pairs = (key: string): Array<[string, string]> => Object.entries(f.object(o[key], `${path}.${key}`)).map(([k, val]) => {
    const value = f.string(val, `${path}.${key}.${k}`) ?? ''
    // Node's own checks: a line break in a value would let a route author inject headers or split the request.
    try { validateHeaderName(k) } catch { f.fail(`${path}.${key}`, `"${k}" is not a valid header name`) }
    try { validateHeaderValue(k, value) } catch { f.fail(`${path}.${key}.${k}`, 'holds a character a header value may not (a line break, NUL or another control character)') }
    return [k.toLowerCase(), value]
  })
  return { set: pairs('set'), add: pairs('add'), remove: f.list(o.remove, `${path}.remove`).map((h, i) => (f.string(h, `${path}.remove[${i}]`) ?? '').toLowerCase()) }
}
