// Mutated config files into parseConfig (src/config/load.ts, yaml.ts): byte
// flips, lines deleted, repeated or re-indented, random scalars under random
// keys, anchors and aliases. A file either loads or is refused with a config
// error naming the file, never anything else, each within a second, and
// nothing is printed on the way (a library or Node warning).
// FUZZ_INPUTS and FUZZ_SEED pick the run; see src/config/README.md.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import type { TSchema } from '@sinclair/typebox'
import { parseConfig } from '../../../src/config/load.ts'
import { ConfigFileError, ConfigInvalidError } from '../../../src/config/errors.ts'
import { SCHEMAS } from '../../../src/config/schema.ts'
import { schemaProperties } from '../../../src/config/util.ts'
import { FUZZ_INPUTS, FUZZ_SEED, Random, mutate } from '../../helpers/fuzz.ts'

const DIR = 'test/fixtures/config'
const FIXTURES = readdirSync(new URL(`../../../${DIR}`, import.meta.url)).sort()
  .map(name => ({ file: `${DIR}/${name}`, lines: readFileSync(new URL(`../../../${DIR}/${name}`, import.meta.url), 'utf8').split('\n') }))

/** Every key the schema knows, at any depth, and a few that objects already have. */
function keys (schema: TSchema, out = new Set(['__proto__', 'constructor', 'toString', '<<', '? [a]', '"quoted"', ''])): string[] {
  for (const [k, s] of Object.entries(schemaProperties(schema) ?? {})) { out.add(k); keys(s, out) }
  if (schema.type === 'array') keys(schema.items as TSchema, out)
  return [...out]
}
const KEYS = keys(SCHEMAS.agent)

const SCALARS = [
  '', '~', 'null', 'true', 'False', 'yes', 'off', '0', '-1', '65536', '0x1F', '0o17', '1e400', '-.inf', '.nan', '1_000', '3.5',
  '"quoted"', "'single'", '"\\u0000\\x7f"', '"unterminated', "'unterminated", '[]', '{}', '[1, [2, {a: 3}]]', '{a: 1, b: [x]}', '[unclosed', '{unclosed',
  '|\n  block\n  text', '>-\n  folded', '!!str 5', '!!int x', '!!float 1', '!!binary aGVsbG8=', '!!timestamp 2001-12-14', '!!set {a, b}',
  '!!omap [a: 1]', '!!pairs [a: 1]', '!!map [1]', '!custom x', '!<tag:yaml.org,2002:str> x', '%YAML 1.1', '--- x', '...',
  '10.0.0.1', '2001:db8::1', '10.244.0.0/16', '1.2.3.4:53', '/etc/edgemesh/psk', 'relative/path', 'eth0,wlan0', '*', 'edgemesh0',
  'a'.repeat(300), '- item', '? key', ': v', '# comment', '\t', '\\', '@', '`', '&', '*', 'ünïcode ✓', '\u{1f600}'
]

function indentOf (line: string): string {
  return /^[ -]*/.exec(line)?.[0].replace(/-/g, ' ') ?? ''
}

/** One to four line-level changes to a fixture's lines. */
function mutateLines (r: Random, lines: string[]): string[] {
  const out = [...lines]
  const anchors: string[] = []
  for (let round = 1 + r.below(4); round > 0; round--) {
    const at = r.below(out.length)
    const line = out[at] as string
    switch (r.below(7)) {
      case 0: out.splice(at, 1 + r.below(3)); break
      case 1: out.splice(at, 0, ...out.slice(at, at + 1 + r.below(3))); break
      case 2: out[at] = (r.below(8) === 0 ? '\t' : ' '.repeat(r.below(12))) + line.trimStart(); break
      case 3: {
        // A random scalar under a random key, replacing a value or as a new line.
        const key = r.below(4) === 0 ? r.pick(KEYS).toUpperCase() : r.pick(KEYS)
        const entry = `${indentOf(line)}${key}: ${r.pick(SCALARS)}`
        if (r.below(2) === 0) out[at] = entry
        else out.splice(at, 0, entry)
        break
      }
      case 4: {
        // An anchor on a value, or an alias to one: known, unknown, or the value it sits in.
        const m = /^(\s*-?\s*[^:#]+:)(.*)$/.exec(line)
        if (m === null) break
        if (anchors.length === 0 || r.below(3) === 0) {
          const name = `a${r.below(4)}`
          anchors.push(name)
          out[at] = `${m[1] as string} &${name}${m[2] as string}`
        } else {
          out[at] = `${m[1] as string} *${r.below(4) === 0 ? 'nowhere' : r.pick(anchors)}`
        }
        break
      }
      case 5: out.splice(at, 0, `${indentOf(line)}<<: *${anchors.length > 0 ? r.pick(anchors) : 'a0'}`); break
      default: out[at] = `${line.slice(0, r.below(line.length + 1))}${r.pick(SCALARS)}`
    }
  }
  return out
}

/** Loads `text` as `file`: whether it loaded, or which config error refused it; anything else fails. */
function load (file: string, text: string, input: number): 'loaded' | 'fileErrors' | 'invalid' {
  try {
    parseConfig('agent', text, { file, env: {} })
    return 'loaded'
  } catch (err) {
    if (!(err instanceof ConfigFileError || err instanceof ConfigInvalidError)) {
      assert.fail(`${file} mutated (input ${input}) threw ${String(err)}\n--- input ---\n${text}`)
    }
    assert.ok(err.message.includes(file), err.message)
    return err instanceof ConfigFileError ? 'fileErrors' : 'invalid'
  }
}

test(`config fuzz: ${FUZZ_INPUTS} mutated config files (seed ${FUZZ_SEED})`, async () => {
  const r = new Random(FUZZ_SEED)
  const stats = { loaded: 0, fileErrors: 0, invalid: 0 }
  const warnings: string[] = []
  const onWarning = (w: Error): void => { warnings.push(w.message) }
  process.on('warning', onWarning)
  for (let i = 0; i < FUZZ_INPUTS; i++) {
    const { file, lines } = r.pick(FIXTURES)
    let text = mutateLines(r, lines).join('\n')
    // A third of them also get byte-level changes.
    if (r.below(3) === 0) text = mutate(r, Buffer.from(text)).toString('utf8')
    const t0 = performance.now()
    stats[load(file, text, i)]++
    if (performance.now() - t0 >= 1000) {
      // A stall of the machine (another process, a full GC) is not the input's: a slow input is slow again.
      const t1 = performance.now()
      load(file, text, i)
      const ms = performance.now() - t1
      assert.ok(ms < 1000, `input ${i} took ${Math.round(ms)} ms:\n${text}`)
    }
  }
  // Warnings are emitted on the next tick.
  await new Promise(resolve => setImmediate(resolve))
  process.off('warning', onWarning)
  assert.deepEqual(warnings, [])
  for (const [k, n] of Object.entries(stats)) assert.ok(n > FUZZ_INPUTS / 50, `${k}: ${JSON.stringify(stats)}`)
})
