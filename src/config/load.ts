import { open } from 'node:fs/promises'
import { Value } from '@sinclair/typebox/value'
import type { TSchema } from '@sinclair/typebox'
import { SCHEMAS } from './schema.ts'
import type { AgentConfig, ConfigKind, GatewayConfig, RunningMode } from './schema.ts'
import { ConfigFileError, ConfigInvalidError } from './errors.ts'
import type { ConfigIssue } from './errors.ts'
import { checkAgent, checkValue, describeExpected } from './validate.ts'
import { MAX_FILE_BYTES, readYaml } from './yaml.ts'
import { deepFreeze, isRecord, schemaProperties } from './util.ts'

export interface ParseOptions {
  /** File name for messages and the default `edgeTunnel.configPath`. */
  file?: string
  /** Environment used to detect the running mode. @default process.env */
  env?: NodeJS.ProcessEnv
  /** Whether files named by the config (kubeConfig) must exist. @default true */
  checkFiles?: boolean
}

export interface Loaded<T> {
  config: T
  /** Human-readable warnings, e.g. unknown keys. Never fatal. */
  warnings: string[]
}

/** Unknown-key warnings kept; the rest are counted. */
const MAX_WARNINGS = 20

type ConfigOf<K extends ConfigKind> = K extends 'agent' ? AgentConfig : GatewayConfig

/**
 * Parses a config file's text the way upstream does: YAML deep-merged over the
 * defaults (objects merge, lists replace, scalars override), keys matched
 * case-insensitively, empty values meaning "not set". Unknown keys become
 * warnings. Invalid values throw ConfigInvalidError listing every issue. The
 * result is deep-frozen.
 */
export function parseConfig<K extends ConfigKind> (kind: K, text: string, options: ParseOptions = {}): Loaded<ConfigOf<K>> {
  return parseText(kind, text, options, false)
}

function parseText<K extends ConfigKind> (kind: K, text: string, options: ParseOptions, truncated: boolean): Loaded<ConfigOf<K>> {
  const schema = SCHEMAS[kind]
  const file = options.file ?? '<config>'
  const raw = readYaml(text, file, truncated)
  if (raw !== null && raw !== undefined && !isRecord(raw)) {
    throw new ConfigInvalidError(file, [{ path: '(root)', expected: 'a mapping', given: JSON.stringify(raw) }])
  }

  const warnings: string[] = []
  const issues: ConfigIssue[] = []
  const user = normalize(schema, raw ?? {}, '', warnings, issues) as Record<string, unknown>
  if (issues.length > 0) throw new ConfigInvalidError(file, issues)
  if (warnings.length > MAX_WARNINGS) warnings.splice(MAX_WARNINGS, Infinity, `${warnings.length - MAX_WARNINGS} more unknown keys ignored`)

  applyModeDefaults(kind, user, options.env ?? process.env)
  const value = Value.Default(schema, user) as Record<string, unknown>

  const seen = new Set<string>()
  for (const e of Value.Errors(schema, value)) {
    const path = pointerToPath(e.path)
    if (covered(seen, path)) continue
    seen.add(path)
    issues.push({ path, expected: describeExpected(e.schema), given: show(e.value) })
  }
  for (const issue of checkValue(schema, value, '', options.checkFiles ?? true)) {
    if (!covered(seen, issue.path)) issues.push(issue)
  }
  if (issues.length === 0 && kind === 'agent') issues.push(...checkAgent(value as AgentConfig))
  if (issues.length > 0) throw new ConfigInvalidError(file, issues)

  const modules = value.modules as { edgeTunnel: { configPath: string } }
  if (modules.edgeTunnel.configPath === '' && options.file !== undefined) {
    modules.edgeTunnel.configPath = options.file
  }
  return { config: deepFreeze(value) as ConfigOf<K>, warnings }
}

/** Reads and parses a config file; a missing file is a ConfigFileError. */
export async function loadConfigFile<K extends ConfigKind> (kind: K, file: string, options: Omit<ParseOptions, 'file'> = {}): Promise<Loaded<ConfigOf<K>>> {
  let text: string
  let truncated: boolean
  try {
    ({ text, truncated } = await readBounded(file, MAX_FILE_BYTES))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigFileError(file, code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`, { cause: err })
  }
  return parseText(kind, text, { ...options, file }, truncated)
}

/** At most `max` bytes (and whether there was more), whatever the file's stat says (/dev/zero, a FIFO). */
async function readBounded (file: string, max: number): Promise<{ text: string, truncated: boolean }> {
  const fh = await open(file, 'r')
  try {
    const buf = Buffer.alloc(max + 1)
    let n = 0
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null)
      if (bytesRead === 0) break
      n += bytesRead
    }
    return { text: buf.toString('utf8', 0, Math.min(n, max)), truncated: n > max }
  } finally {
    await fh.close()
  }
}

/** The running mode before master/kubeConfig are considered (upstream DetectRunningMode). */
export function detectMode (env: NodeJS.ProcessEnv): 'EdgeMode' | 'CloudMode' {
  return env.KUBERNETES_PORT !== undefined ? 'CloudMode' : 'EdgeMode'
}

/** Upstream: EdgeMode turns EdgeDNS on and asks for JSON; only where the file is silent. */
function applyModeDefaults (kind: ConfigKind, user: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  const kubeApi = ensureRecord(user, 'kubeAPIConfig')
  const mode = (kubeApi.mode as RunningMode | undefined) ?? detectMode(env)
  if (mode !== 'EdgeMode') return
  kubeApi.contentType ??= 'application/json'
  if (kind === 'agent') {
    const dns = ensureRecord(ensureRecord(user, 'modules'), 'edgeDNS')
    dns.enable ??= true
  }
}

function ensureRecord (parent: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = parent[key]
  if (isRecord(v)) return v
  const created: Record<string, unknown> = {}
  parent[key] = created
  return created
}

/**
 * Maps keys to the schema's spelling (case-insensitive), drops nulls ("not
 * set") and reports unknown keys as warnings.
 */
function normalize (schema: TSchema, value: unknown, path: string, warnings: string[], issues: ConfigIssue[]): unknown {
  if (value === null || value === undefined) return undefined
  const props = schemaProperties(schema)
  if (props !== undefined) {
    if (!isRecord(value)) {
      issues.push({ path: path === '' ? '(root)' : path, expected: 'a mapping', given: show(value) })
      return undefined
    }
    const byLower = new Map(Object.keys(props).map(k => [k.toLowerCase(), k]))
    const out: Record<string, unknown> = {}
    for (const [key, v] of Object.entries(value)) {
      const canonical = byLower.get(key.toLowerCase())
      const childPath = path === '' ? key : `${path}.${key}`
      if (canonical === undefined) {
        warnings.push(`unknown key "${childPath}" ignored`)
        continue
      }
      const child = normalize(props[canonical] as TSchema, v, path === '' ? canonical : `${path}.${canonical}`, warnings, issues)
      if (child !== undefined) out[canonical] = child
    }
    return out
  }
  if (schema.type === 'array') {
    // Refused here: TypeBox's Value.Default would turn a mapping into an empty list that keeps its keys.
    if (!Array.isArray(value)) {
      issues.push({ path, expected: describeExpected(schema), given: show(value) })
      return undefined
    }
    // Checked before the items so that a huge list costs one issue, not one per item.
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) {
      issues.push({ path, expected: describeExpected(schema), given: `${value.length} items` })
      return undefined
    }
    const items = schema.items as TSchema
    return value.map((v, i) => normalize(items, v, `${path}[${i}]`, warnings, issues) ?? null)
  }
  if (typeof value === 'string' && typeof schema.maxLength === 'number' && value.length > schema.maxLength) {
    issues.push({ path, expected: describeExpected(schema), given: `${show(value)} (${value.length} characters)` })
    return undefined
  }
  return value
}

/** Whether `path` or a key above it already has an issue. */
function covered (seen: ReadonlySet<string>, path: string): boolean {
  for (let p = path; p !== ''; p = p.replace(/(\.[^.[]*|\[\d+\])$/, '')) {
    if (seen.has(p)) return true
    if (!/[.[]/.test(p)) break
  }
  return false
}

function pointerToPath (pointer: string): string {
  if (pointer === '') return '(root)'
  return pointer.slice(1).split('/').map(s => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => /^\d+$/.test(seg) ? `${acc}[${seg}]` : (acc === '' ? seg : `${acc}.${seg}`), '')
}

export function show (v: unknown): string {
  if (v === undefined) return 'nothing'
  const s = JSON.stringify(v) ?? String(v)
  // Values can be up to a MiB: messages show their start.
  return s.length > 80 ? `${s.slice(0, 60)}…` : s
}
