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

test('a failed start rolls back the failed component and what started before it, in reverse, and names the component', async () => {
  const events: string[] = []
  const g = new LifecycleGroup('app', [component('a', events), component('b', events), component('c', events, true), component('d', events)], noopLogger)
  await assert.rejects(g.start(), (err: unknown) =>
    err instanceof ComponentStartError && err.component === 'c' && err.code === 'EM_ERR_COMPONENT_START' && /c broke/.test(err.message))
  assert.deepEqual(events, ['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a'])
})

test('a component that fails half way through its start releases what it opened', async () => {
  // As the tunnel did when its data path listened and libp2p then failed: the port stayed bound.
  const { createServer } = await import('node:net')
  const server = createServer()
  const halfway: Component = {
    name: 'halfway',
    async start () {
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
      throw new Error('second step failed')
    },
    async stop () { if (server.listening) await new Promise(resolve => server.close(resolve)) }
  }
  const g = new LifecycleGroup('app', [halfway], noopLogger)
  await assert.rejects(g.start(), ComponentStartError)
  assert.equal(server.listening, false, 'the listener is closed by the rollback')
})

test('one component failing to stop does not keep the others running', async () => {
  const events: string[] = []
  const bad: Component = { name: 'bad', async start () {}, async stop () { events.push('stop bad'); throw new Error('stuck') } }
  const g = new LifecycleGroup('app', [component('a', events), bad, component('c', events)], noopLogger)
  await g.start()
  await g.stop()
  assert.deepEqual(events.filter(e => e.startsWith('stop')), ['stop c', 'stop bad', 'stop a'])
})

test('notReady names a component, or says what it reports missing once started', async () => {
  let bound = false
  const listener: Component = {
    name: 'gateway',
    start: async () => {},
    stop: async () => {},
    isReady: () => bound,
    whyNotReady: () => bound ? [] : ['gateway port 80 on 10.0.0.5: EADDRINUSE']
  }
  const quiet: Component = { name: 'dns', start: async () => {}, stop: async () => {}, isReady: () => false }
  const group = new LifecycleGroup('app', [listener, quiet], noopLogger)
  assert.deepEqual(group.notReady(), ['gateway', 'dns'], 'not started: names only')
  await group.start()
  assert.deepEqual(group.notReady(), ['gateway port 80 on 10.0.0.5: EADDRINUSE', 'dns'])
  bound = true
  assert.deepEqual(group.notReady(), ['dns'])
  await group.stop()
})
