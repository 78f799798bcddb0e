/**
 * Every key of edgemesh-agent.yaml and edgemesh-gateway.yaml either reaches
 * code or is marked `noEffect` in src/config/schema.ts (docs/config.md then
 * says "Accepted for compatibility, no effect."), so the docs never describe
 * a key that does nothing as if it worked.
 *
 * "Reaches code" is checked on the syntax of src/**.ts, except the files that
 * declare, load and document the schema (comments and type declarations do
 * not count): the key's name is read as
 * a property (`x.key`, `x?.key`, `x['key']`) or destructured (`{ key } = x`).
 * Names too generic for that (`enable`, `port`, ...) count only when read on
 * their parent (`psk.enable`); otherwise the key needs an ALLOW entry naming
 * the file that reads it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import type { TSchema } from '@sinclair/typebox'
import { NO_EFFECT, SCHEMAS } from '../../../src/config/schema.ts'
import type { ConfigKind } from '../../../src/config/schema.ts'
import { schemaProperties } from '../../../src/config/util.ts'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

/** They handle every key alike. Other files of src/config (node-identity.ts, relays.ts) are consumers and are scanned. */
const MACHINERY = ['schema.ts', 'load.ts', 'validate.ts', 'docs.ts', 'util.ts', 'errors.ts'].map(f => join(ROOT, 'src/config', f))

/** Names that other objects (Kubernetes objects, DNS records, sockets) use too: a bare read proves nothing. */
const GENERIC = new Set(['enable', 'port', 'listenPort', 'path', 'server', 'mode', 'kind', 'apiVersion', 'nodeName', 'identity', 'load', 'ttl'])

/** Consumed keys the syntax check cannot see (generic name, read off a renamed variable), with the file that reads them or hands their section on. */
const ALLOW: Record<string, { file: string }> = {
  'kubeAPIConfig.mode': { file: 'src/kube/connection.ts' },
  'kubeAPIConfig.metaServer.server': { file: 'src/kube/connection.ts' },
  'modules.edgeDNS.listenPort': { file: 'src/dns/server.ts' },
  'modules.edgeDNS.ttl': { file: 'src/dns/server.ts' },
  'modules.edgeTunnel.relayNodes[].nodeName': { file: 'src/config/relays.ts' },
  'modules.edgeTunnel.identity': { file: 'src/app/mesh.ts' },
  'modules.edgeTunnel.listenPort': { file: 'src/app/agent.ts' },
  // src/app/agent.ts hands the whole section to the load balancer's ring (src/loadbalancer/consistent-hash.ts).
  'modules.edgeProxy.loadBalancer.consistentHash.partitionCount': { file: 'src/app/agent.ts' },
  'modules.edgeProxy.loadBalancer.consistentHash.replicationFactor': { file: 'src/app/agent.ts' },
  'modules.edgeProxy.loadBalancer.consistentHash.load': { file: 'src/app/agent.ts' },
  'modules.edgeGateway.loadBalancer.consistentHash.load': { file: 'src/app/agent.ts' }
}

/** No-effect keys that code does read, without acting on them. */
const READ_WITHOUT_EFFECT: Record<string, { file: string, why: string }> = {
  'kubeAPIConfig.contentType': { file: 'src/kube/connection.ts', why: 'copied to requestedContentType, which nothing reads' }
}

interface Leaf { kind: ConfigKind, path: string, key: string, parent: string | undefined, noEffect: boolean, underNoEffect: boolean, description: string }

function leaves (schema: TSchema, kind: ConfigKind, path: string[], underNoEffect: boolean, out: Leaf[]): Leaf[] {
  const marked = schema['x-no-effect'] === true
  const props = schemaProperties(schema)
  if (props !== undefined) {
    for (const [k, s] of Object.entries(props)) leaves(s, kind, [...path, k], underNoEffect || marked, out)
  } else if (schema.type === 'array' && schemaProperties(schema.items as TSchema) !== undefined) {
    const last = path.length - 1
    leaves(schema.items as TSchema, kind, [...path.slice(0, last), `${path[last] as string}[]`], underNoEffect || marked, out)
  } else {
    out.push({
      kind,
      path: path.join('.'),
      key: path[path.length - 1] as string,
      parent: path[path.length - 2]?.replace(/\[\]$/, ''),
      noEffect: marked,
      underNoEffect,
      description: schema.description ?? ''
    })
  }
  return out
}

/** Property names read in a file: `key` and `parent.key` → files. */
const reads = new Map<string, Set<string>>()

function noteRead (name: string, file: string): void {
  let files = reads.get(name)
  if (files === undefined) reads.set(name, files = new Set())
  files.add(file)
}

function lastName (e: ts.Expression): string | undefined {
  if (ts.isIdentifier(e)) return e.text
  if (ts.isPropertyAccessExpression(e)) return e.name.text
  if (ts.isNonNullExpression(e) || ts.isParenthesizedExpression(e)) return lastName(e.expression)
  return undefined
}

function scan (file: string): void {
  const rel = relative(ROOT, file)
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const visit = (node: ts.Node): void => {
    let name: string | undefined
    let on: ts.Expression | undefined
    if (ts.isPropertyAccessExpression(node)) {
      name = node.name.text
      on = node.expression
    } else if (ts.isElementAccessExpression(node) && ts.isStringLiteralLike(node.argumentExpression)) {
      name = node.argumentExpression.text
      on = node.expression
    } else if (ts.isBindingElement(node) && ts.isObjectBindingPattern(node.parent)) {
      const prop = node.propertyName ?? node.name
      if (ts.isIdentifier(prop) || ts.isStringLiteralLike(prop)) name = prop.text
    }
    if (name !== undefined) {
      noteRead(name, rel)
      const parent = on === undefined ? undefined : lastName(on)
      if (parent !== undefined) noteRead(`${parent}.${name}`, rel)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
}

function tsFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(d => {
    const p = join(dir, d.name)
    if (d.isDirectory()) return tsFiles(p)
    return d.name.endsWith('.ts') && !MACHINERY.includes(p) ? [p] : []
  })
}

for (const f of tsFiles(join(ROOT, 'src'))) scan(f)

const all = [...leaves(SCHEMAS.agent, 'agent', [], false, []), ...leaves(SCHEMAS.gateway, 'gateway', [], false, [])]

/** What a read of this leaf looks like: `key`, or `parent.key` for generic names. */
function readName (l: Leaf): string | undefined {
  if (!GENERIC.has(l.key)) return l.key
  return l.parent === undefined ? undefined : `${l.parent}.${l.key}`
}

const readers = (l: Leaf): string[] => {
  const name = readName(l)
  return name === undefined ? [] : [...reads.get(name) ?? []]
}

const where = (l: Leaf): string => `${l.kind}: ${l.path}`

test('the source scan sees the config reads it should (sanity)', () => {
  assert.ok(reads.get('tunnelBaseStreamIn')?.has('src/app/mesh.ts'))
  assert.ok(reads.get('psk.enable')?.has('src/app/mesh.ts'))
  assert.ok(reads.get('cacheDNS.enable') !== undefined, 'optional chaining counts')
  assert.ok(reads.get('bridgeDeviceName')?.has('src/app/agent.ts'), 'destructuring counts')
  assert.ok(all.length > 100)
  for (const f of MACHINERY) assert.ok(existsSync(f), `${relative(ROOT, f)} moved: update MACHINERY`)
})

test('every config key is read by code or marked no-effect', () => {
  const missing = all.filter(l => !l.noEffect && ALLOW[l.path] === undefined && readers(l).length === 0).map(where)
  assert.deepEqual(missing, [], 'keys nothing reads: wire them, or mark them `noEffect: true` in src/config/schema.ts' +
    ' (a key read under another name goes in ALLOW of this test, with the file that reads it)')
})

test('no key marked no-effect is read by code', () => {
  // A read of a shared name (gateway and agent `edgeTunnel.listenPort`) is the consumed key's.
  const consumed = new Set(all.filter(l => !l.noEffect).map(readName))
  const read = all.filter(l => l.noEffect && READ_WITHOUT_EFFECT[l.path] === undefined && !consumed.has(readName(l)) && readers(l).length > 0)
  assert.deepEqual(read.map(l => `${where(l)} (read in ${readers(l).join(', ')})`), [],
    'marked no-effect but read: drop the mark, or list the key in READ_WITHOUT_EFFECT if the read changes nothing')
  // ALLOW covers the key in both files when it is shared (the gateway's edgeTunnel is no-effect, the agent's is not).
  const allowed = Object.keys(ALLOW).filter(p => all.every(l => l.path !== p || l.noEffect))
  assert.deepEqual(allowed, [], 'in ALLOW (consumed) but marked no-effect')
})

test('a no-effect mark covers every key of a no-effect section and says so in the docs', () => {
  assert.deepEqual(all.filter(l => l.underNoEffect && !l.noEffect).map(where), [], 'unmarked key in a section marked no-effect')
  for (const l of all) {
    assert.equal(l.description.startsWith(NO_EFFECT), l.noEffect, `${where(l)}: the description starts with "${NO_EFFECT}" exactly when the key is marked`)
  }
})

test('ALLOW and READ_WITHOUT_EFFECT name existing keys and the files that read them', () => {
  const byPath = new Map(all.map(l => [l.path, l]))
  for (const [path, { file }] of Object.entries(ALLOW)) {
    const l = byPath.get(path)
    assert.ok(l !== undefined, `ALLOW: no key ${path}`)
    assert.ok(existsSync(join(ROOT, file)), `ALLOW ${path}: no file ${file}`)
    const names = [l.key, ...(l.parent !== undefined ? [l.parent] : [])]
    assert.ok(names.some(n => reads.get(n)?.has(file)), `ALLOW ${path}: ${file} reads neither .${names.join(' nor .')}`)
  }
  for (const [path, { file }] of Object.entries(READ_WITHOUT_EFFECT)) {
    const l = byPath.get(path)
    assert.ok(l?.noEffect === true, `READ_WITHOUT_EFFECT: ${path} is not a key marked no-effect`)
    assert.ok(readers(l).includes(file), `READ_WITHOUT_EFFECT ${path}: ${file} does not read it (drop the entry)`)
  }
})
