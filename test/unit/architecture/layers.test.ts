// The import boundaries of src/: modules build on lower layers and never
// reach up. Type-only imports may also cross to a module of the same layer
// (its interfaces); value imports may not.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const repoSrc = fileURLToPath(new URL('../../../src/', import.meta.url))

/** Lower index = lower layer. `errors` and `order` are src/errors.ts and src/order.ts. */
const LAYERS: string[][] = [
  ['errors', 'order'],
  ['lifecycle', 'observability', 'config', 'net'],
  ['kube'],
  ['servicemap', 'loadbalancer', 'mesh'],
  ['dns', 'datapath', 'tunnel', 'proxy', 'gateway', 'nat', 'cni'],
  ['app', 'doctor', 'docs'],
  ['cli'],
  ['bin']
]

function layerOf (module: string): number {
  const i = LAYERS.findIndex(l => l.includes(module))
  assert.notEqual(i, -1, `src/${module} is in no layer: add it to LAYERS in this test`)
  return i
}

function moduleOf (src: string, file: string): string {
  const rel = relative(src, file)
  return rel.includes('/') ? rel.split('/')[0] as string : rel.replace(/\.ts$/, '')
}

function files (dir: string): string[] {
  return readdirSync(dir).flatMap(n => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? files(p) : n.endsWith('.ts') ? [p] : []
  })
}

interface Edge { from: string, to: string, typeOnly: boolean }

function imports (file: string): Edge[] {
  const text = readFileSync(file, 'utf8')
  const out: Edge[] = []
  for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^'"]*?from\s+'(\.[^']+)'/gm)) {
    out.push({ from: file, to: resolve(dirname(file), m[3] as string), typeOnly: m[2] !== undefined })
  }
  for (const m of text.matchAll(/import\('(\.[^']+)'\)/g)) out.push({ from: file, to: resolve(dirname(file), m[1] as string), typeOnly: false })
  return out
}

function violations (src: string): string[] {
  const out: string[] = []
  for (const file of files(src)) {
    const from = moduleOf(src, file)
    for (const e of imports(file)) {
      // The CLI prints the version from package.json.
      if (e.to.endsWith('/package.json')) continue
      if (!e.to.startsWith(src)) { out.push(`${relative(src, file)} imports ${e.to} outside src/`); continue }
      const to = moduleOf(src, e.to)
      if (to === from) continue
      const a = layerOf(from)
      const b = layerOf(to)
      if (b < a) continue
      if (b === a && e.typeOnly) continue
      out.push(`src/${relative(src, file)} → src/${relative(src, e.to)} (${from}, layer ${a} → ${to}, layer ${b}${e.typeOnly ? ', types' : ''})`)
    }
  }
  return out
}

test('no module imports upward, and values never cross to a module of the same layer', () => {
  assert.deepEqual(violations(repoSrc), [])
})

test('the check catches an upward import and a sideways value import, and lets sideways types through', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-layers-'))
  try {
    const write = (file: string, text: string): void => { mkdirSync(dirname(join(dir, file)), { recursive: true }); writeFileSync(join(dir, file), text) }
    write('net/a.ts', "import { EdgeProxy } from '../proxy/proxy.ts'\n")
    write('proxy/proxy.ts', 'export const EdgeProxy = 1\n')
    write('tunnel/t.ts', "import type { DataPath } from '../datapath/datapath.ts'\nimport { DataPath as D } from '../datapath/datapath.ts'\n")
    write('datapath/datapath.ts', 'export class DataPath {}\n')
    const found = violations(dir + '/')
    assert.equal(found.length, 2, found.join('\n'))
    assert.match(found.join('\n'), /net\/a\.ts → .*proxy/)
    assert.match(found.join('\n'), /tunnel\/t\.ts → .*datapath.*\)$/m)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
