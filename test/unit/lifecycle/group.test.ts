import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LifecycleGroup } from '../../../src/lifecycle/group.ts'
import type { Component } from '../../../src/lifecycle/component.ts'
import { ComponentStartError } from '../../../src/errors.ts'
import { noopLogger } from '../../../src/observability/logger.ts'

function component (name: string, events: string[], failStart = false): Component {
  return {
    name,
    async start () { events.push(`start ${name}`); if (failStart) throw new Error(`${name} broke`) },
    async stop () { events.push(`stop ${name}`) }
  }
}

test('starts in order, stops in reverse, stop is idempotent', async () => {
  const events: string[] = []
  const g = new LifecycleGroup('app', [component('a', events), component('b', events), component('c', events)], noopLogger)
  await g.start()
  assert.equal(g.isReady(), true)
  await Promise.all([g.stop(), g.stop()])
  await g.stop()
  assert.deepEqual(events, ['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a'])
})

test('a failed start rolls back what started, in reverse, and names the component', async () => {
  const events: string[] = []
  const g = new LifecycleGroup('app', [component('a', events), component('b', events), component('c', events, true), component('d', events)], noopLogger)
  await assert.rejects(g.start(), (err: unknown) =>
    err instanceof ComponentStartError && err.component === 'c' && err.code === 'EM_ERR_COMPONENT_START' && /c broke/.test(err.message))
  assert.deepEqual(events, ['start a', 'start b', 'start c', 'stop b', 'stop a'])
})

test('one component failing to stop does not keep the others running', async () => {
  const events: string[] = []
  const bad: Component = { name: 'bad', async start () {}, async stop () { events.push('stop bad'); throw new Error('stuck') } }
  const g = new LifecycleGroup('app', [component('a', events), bad, component('c', events)], noopLogger)
  await g.start()
  await g.stop()
  assert.deepEqual(events.filter(e => e.startsWith('stop')), ['stop c', 'stop bad', 'stop a'])
})
