import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Limiter } from '../../../src/net/limiter.ts'

describe('Limiter: bounded holders, newest waiter first', () => {
  test('at most max hold at once; a release hands the slot to the newest waiter', async () => {
    const limiter = new Limiter(2)
    const a = await limiter.acquire()
    await limiter.acquire()
    const order: string[] = []
    const waits = ['first', 'second', 'third'].map(async name => { const release = await limiter.acquire(); order.push(name); return release })
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(limiter.held, 2)
    assert.equal(limiter.waiting, 3)
    a()
    a() // a second release of the same slot frees nothing more
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(order, ['third'])
    assert.equal(limiter.held, 2)
    assert.equal(limiter.waiting, 2)
    ;(await waits[2] as () => void)()
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(order, ['third', 'second'])
  })

  test('a waiter whose signal aborts leaves the queue and gets the reason; an aborted signal never waits', async () => {
    const limiter = new Limiter(1)
    const release = await limiter.acquire()
    const gone = new AbortController()
    const left = limiter.acquire(gone.signal)
    const stays = limiter.acquire()
    gone.abort(new Error('client left'))
    await assert.rejects(left, /client left/)
    assert.equal(limiter.waiting, 1)
    release()
    ;(await stays)()
    assert.equal(limiter.held, 0)
    await assert.rejects(limiter.acquire(AbortSignal.abort(new Error('already gone'))), /already gone/)
    assert.equal(limiter.held, 0)
  })
})
