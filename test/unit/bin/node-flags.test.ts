// The agent's start-only tier-up counts are set back to V8's own defaults
// once it runs: those defaults must be this Node's, and a count the operator
// chose is left alone.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { AGENT_NODE_FLAGS, TIER_UP_AFTER_START, tierUpAfterStart } from '../../../src/bin/node-flags.ts'

test('TIER_UP_AFTER_START holds this Node\'s V8 defaults, for flags the agent starts with', () => {
  const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' })
  for (const flag of TIER_UP_AFTER_START) {
    const [name, value] = flag.split('=') as [string, string]
    assert.match(options, new RegExp(`default: ${name}=${value}\\b`), `${name}'s default is ${value} in V8 ${process.versions.v8}`)
    assert.ok(AGENT_NODE_FLAGS.some(f => f.startsWith(`${name}=`) && f !== flag), `the agent starts with its own ${name}`)
  }
})

test('the defaults come back unless the operator gave a count of their own', () => {
  assert.deepEqual(tierUpAfterStart(AGENT_NODE_FLAGS.join(' ')), TIER_UP_AFTER_START)
  assert.deepEqual(tierUpAfterStart(''), TIER_UP_AFTER_START)
  assert.deepEqual(tierUpAfterStart('--invocation-count-for-turbofan=500'), ['--invocation-count-for-maglev=400'])
})
