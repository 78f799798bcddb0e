/**
 * YAML text → plain data, bounded so that a hostile or broken file is refused
 * in well under a second with the key it concerns: size, token count, alias
 * expansion, duplicate keys. The `yaml` library spends a few microseconds per
 * token, so the token count is checked with its lexer before anything else.
 */
import { Lexer, isAlias, isMap, isPair, isScalar, isSeq, parseDocument } from 'yaml'
import type { Document, ParsedNode } from 'yaml'
import { ConfigFileError, ConfigInvalidError } from './errors.ts'
import type { ConfigIssue } from './errors.ts'

/** Upstream files are a few KB. */
export const MAX_FILE_BYTES = 1024 * 1024
/** Tokens of the lexer: 1000 relay nodes with two addresses each take 27,000. */
export const MAX_YAML_TOKENS = 50_000
/** Tokens parsed to name the key of a file over a limit: parsing costs several µs a token. */
const KEY_SCAN_TOKENS = 5_000
/** Values after expanding aliases (a "billion laughs" file has 10^9). */
export const MAX_YAML_VALUES = 200_000
/** Flow collections inside each other (`[[[...]]]`); parsing recurses per level. */
export const MAX_YAML_DEPTH = 64
/** Alias nodes: each costs the library a walk of the whole document. */
export const MAX_YAML_ALIASES = 100

// Lexer markers that are not source text (yaml/dist/parse/cst.js).
const MARKERS = new Set(['\x02', '\x18', '\x1f'])

/**
 * Parses one YAML document. `truncated` says `text` is only the first
 * MAX_FILE_BYTES of a larger file.
 */
export function readYaml (text: string, file: string, truncated = false): unknown {
  const tooBig = truncated || Buffer.byteLength(text) > MAX_FILE_BYTES
  const head = tooBig ? text.slice(0, MAX_FILE_BYTES) : text
  // Over the size limit only the key remains to be found.
  const { cut, scanned } = tokenLimit(head, tooBig ? KEY_SCAN_TOKENS : MAX_YAML_TOKENS)
  if (tooBig || cut !== undefined) {
    const where = keyAt(head.slice(0, scanned))
    const what = tooBig ? `is larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB` : cut ?? ''
    throw new ConfigFileError(file, `${what}${where === undefined ? '' : ` (the limit is reached in ${where})`}`)
  }

  // logLevel: the library's warnings (a mapping used as a key) would go to stderr; such keys are unknown keys here.
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: sameKey, logLevel: 'error' })
  const syntax = doc.errors.find(e => e.code !== 'DUPLICATE_KEY')
  if (syntax !== undefined) {
    const pos = syntax.linePos?.[0]
    throw new ConfigFileError(pos !== undefined ? `${file}:${pos.line}:${pos.col}` : file, `is not valid YAML: ${syntax.message.split('\n')[0] ?? 'parse error'}`)
  }
  const duplicates: ConfigIssue[] = doc.errors.map(e => ({
    path: pathAt(doc, e.pos[0]),
    expected: 'each key once (keys match case-insensitively)',
    given: `the key again at line ${e.linePos?.[0].line ?? '?'}`
  }))
  if (duplicates.length > 0) throw new ConfigInvalidError(file, duplicates)

  const expansion = checkAliases(doc)
  if (expansion !== undefined) throw new ConfigInvalidError(file, [expansion])
  try {
    return doc.toJS()
  } catch (err) {
    // The library's own alias limit (maxAliasCount), behind ours.
    throw new ConfigFileError(file, `cannot be read: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Whether the lexer passes MAX_YAML_TOKENS tokens or MAX_YAML_DEPTH open
 * brackets, and how much text its first KEY_SCAN_TOKENS tokens (up to the cut) take.
 */
function tokenLimit (text: string, maxTokens: number): { cut?: string, scanned: number } {
  let tokens = 0
  let depth = 0
  let offset = 0
  let scanned: number | undefined
  const stop = (cut: string): { cut: string, scanned: number } => ({ cut, scanned: scanned ?? offset })
  for (const token of new Lexer().lex(text)) {
    if (MARKERS.has(token)) continue
    if (++tokens > maxTokens) return stop(`has more than ${maxTokens} YAML tokens`)
    if (token === '[' || token === '{') {
      if (++depth > MAX_YAML_DEPTH) return stop(`nests brackets more than ${MAX_YAML_DEPTH} deep`)
    } else if (token === ']' || token === '}') {
      depth--
    }
    offset += token.length
    if (tokens === KEY_SCAN_TOKENS) scanned = offset
  }
  return { scanned: scanned ?? offset }
}

/** Keys match case-insensitively (load.ts), so `Enable` repeats `enable`. */
function sameKey (a: ParsedNode, b: ParsedNode): boolean {
  if (isScalar(a) && isScalar(b)) return String(a.value).toLowerCase() === String(b.value).toLowerCase()
  return a === b
}

/**
 * The key that holds most of a file cut at a limit: the deepest value that
 * spans at least half of what was read (a huge list or string), else the
 * innermost key at the cut.
 */
function keyAt (head: string): string | undefined {
  const doc = parseDocument(head, { uniqueKeys: false })
  const path: string[] = []
  let node: unknown = doc.contents
  let best: string[] = []
  const end = head.length - 1
  for (;;) {
    const child = childAt(node, end)
    if (child === undefined) break
    path.push(child.key)
    const range = (child.node as { range?: [number, number, number] } | null)?.range
    if (range !== undefined && range[1] - range[0] >= head.length / 2) best = [...path]
    node = child.node
  }
  const chosen = (best.length > 0 ? best : path).slice(0, 8)
  return chosen.length > 0 ? formatPath(chosen) : undefined
}

/** Path of keys (and `[i]`) to the value at `offset`. */
function pathAt (doc: Document, offset: number): string {
  const path: string[] = []
  let node: unknown = doc.contents
  for (;;) {
    const child = childAt(node, offset)
    if (child === undefined) return path.length > 0 ? formatPath(path) : '(root)'
    path.push(child.key)
    node = child.node
  }
}

function childAt (node: unknown, offset: number): { key: string, node: unknown } | undefined {
  const within = (n: unknown): boolean => {
    const r = (n as { range?: [number, number, number] } | null)?.range
    return r !== undefined && r[0] <= offset && offset <= r[2]
  }
  if (isMap(node)) {
    for (const pair of node.items) {
      if (!isPair(pair)) continue
      if (within(pair.key) || within(pair.value)) {
        return { key: isScalar(pair.key) ? String(pair.key.value) : '?', node: within(pair.value) ? pair.value : undefined }
      }
    }
  } else if (isSeq(node)) {
    for (let i = node.items.length - 1; i >= 0; i--) {
      if (within(node.items[i])) return { key: `[${i}]`, node: node.items[i] }
    }
  }
  return undefined
}

function formatPath (path: string[]): string {
  return path.reduce((acc, k) => k.startsWith('[') ? acc + k : (acc === '' ? k : `${acc}.${k}`), '')
}

/**
 * Counts values as if every alias were copied out; refuses the first key
 * whose value alone is over MAX_YAML_VALUES, or too many aliases.
 */
function checkAliases (doc: Document): ConfigIssue | undefined {
  const anchors = new Map<string, unknown>()
  const size = new Map<unknown, number>()
  // The nodes being counted: an alias to one of them is inside the value it names.
  const open = new Set<unknown>()
  let aliases = 0
  let firstAlias: string | undefined
  let cycle: ConfigIssue | undefined
  const count = (node: unknown, path: string[]): number => {
    let n = 1
    if (isAlias(node)) {
      aliases++
      firstAlias ??= formatPath(path)
      const target = anchors.get(node.source)
      // The library would make that value contain itself, which nothing can read.
      if (open.has(target)) cycle ??= { path: formatPath(path) || '(root)', expected: 'an alias (*name) outside the value it names', given: `*${node.source}` }
      // A missing anchor: the library reports it.
      n = size.get(target) ?? 1
      size.set(node, n)
      return n
    }
    // An anchor names its node from where it stands, before the node's contents.
    const anchor = (node as { anchor?: string } | null)?.anchor
    if (anchor !== undefined) anchors.set(anchor, node)
    open.add(node)
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '?'
        n += count(pair.key, [...path, key]) + count(pair.value, [...path, key])
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => { n += count(item, [...path, `[${i}]`]) })
    }
    open.delete(node)
    size.set(node, n)
    return n
  }
  const total = count(doc.contents, [])
  if (cycle !== undefined) return cycle
  if (aliases > MAX_YAML_ALIASES) {
    return { path: firstAlias ?? '(root)', expected: `at most ${MAX_YAML_ALIASES} aliases (*name) in the file`, given: String(aliases) }
  }
  if (total <= MAX_YAML_VALUES) return undefined
  // Walk down to the deepest key still over the limit on its own.
  const path: string[] = []
  let node: unknown = doc.contents
  for (;;) {
    let next: { key: string, node: unknown } | undefined
    if (isMap(node)) {
      for (const pair of node.items) {
        if ((size.get(pair.value) ?? 0) > MAX_YAML_VALUES) { next = { key: isScalar(pair.key) ? String(pair.key.value) : '?', node: pair.value }; break }
      }
    } else if (isSeq(node)) {
      node.items.some((item, i) => (size.get(item) ?? 0) > MAX_YAML_VALUES && (next = { key: `[${i}]`, node: item }) !== undefined)
    }
    if (next === undefined) break
    path.push(next.key)
    node = next.node
  }
  const n = size.get(node) ?? total
  return { path: path.length > 0 ? formatPath(path) : '(root)', expected: `at most ${MAX_YAML_VALUES} values with aliases expanded`, given: Number.isFinite(n) ? String(n) : 'more than 10^300' }
}
