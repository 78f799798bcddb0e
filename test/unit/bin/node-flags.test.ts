// The agent starts without Sparkplug, Maglev and TurboFan and turns TurboFan
// and Sparkplug on once it works: the flags must do that on this Node, off
// the main thread.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { AGENT_NODE_FLAGS, compilersToTurnOn } from '../../../src/bin/node-flags.ts'

test('the agent turns TurboFan and Sparkplug on; the gateway has nothing to turn on', () => {
  assert.deepEqual(compilersToTurnOn('agent'), ['--turbofan', '--sparkplug'])
  assert.deepEqual(compilersToTurnOn(undefined), ['--turbofan', '--sparkplug'])
  assert.deepEqual(compilersToTurnOn('gateway'), [])
})

test('with the agent\'s flags nothing is optimised until TurboFan is on, then hot code is, off the main thread', () => {
  const script = `
    const hot = n => { let s = 0; for (let i = 0; i < n; i++) s = (s + i * 7) % 1000003; return s }
    for (let k = 0; k < 3000; k++) hot(1000)
    console.log('-- on')
    require('node:v8').setFlagsFromString(${JSON.stringify(compilersToTurnOn('agent').join(' '))})
    for (let k = 0; k < 30000; k++) hot(1000)
  `
  const out = execFileSync(process.execPath, [...AGENT_NODE_FLAGS, '--trace-opt', '--trace-baseline-batch-compilation', '-e', script], { encoding: 'utf8' })
  const [before, after] = out.split('-- on') as [string, string]
  assert.doesNotMatch(before, /target (MAGLEV|TURBOFAN)/, 'compiled while off')
  assert.doesNotMatch(before, /Baseline batch compilation/, 'Sparkplug compiled while off')
  assert.match(after, /Baseline batch compilation\] Enqueued SFI hot/, 'Sparkplug compiles once on')
  assert.match(after, /<JSFunction hot .*target TURBOFAN/, 'the function that ran while it was off is optimised once it is on')
  assert.doesNotMatch(after, /target MAGLEV/)
  assert.doesNotMatch(out, /ConcurrencyMode::kSynchronous/, 'a compile on the main thread')
})
