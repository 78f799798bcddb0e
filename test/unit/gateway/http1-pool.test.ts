import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { Http1Pool } from '../../../src/gateway/http1-pool.ts'

test('a released connection is lent again, most recent first, per endpoint', () => {
  const pool = new Http1Pool({ maxIdlePerKey: 4, idleMs: 10_000 })
  const a = new PassThrough()
  const b = new PassThrough()
  pool.release('10.0.0.1:80', a)
  pool.release('10.0.0.1:80', b)
  assert.equal(pool.take('10.0.0.2:80'), undefined)
  assert.equal(pool.take('10.0.0.1:80'), b)
  assert.equal(pool.take('10.0.0.1:80'), a)
  assert.equal(pool.take('10.0.0.1:80'), undefined)
  assert.equal(a.destroyed || b.destroyed, false)
  pool.close()
})

test('idle connections that close, send bytes or outstay their time leave the pool and are closed', async () => {
  const pool = new Http1Pool({ maxIdlePerKey: 4, idleMs: 50 })
  const closed = new PassThrough()
  const chatty = new PassThrough()
  const old = new PassThrough()
  pool.release('k', closed)
  pool.release('k', chatty)
  closed.destroy()
  chatty.write('HTTP/1.1 408 Request Timeout\r\n\r\n')
  await sleep(5)
  assert.equal(chatty.destroyed, true)
  assert.equal(pool.size, 0)
  pool.release('k', old, 20)
  await sleep(40)
  assert.equal(old.destroyed, true)
  assert.equal(pool.take('k'), undefined)
  pool.close()
})

test('past the cap, and after close, released connections are closed instead of kept', () => {
  const pool = new Http1Pool({ maxIdlePerKey: 2, idleMs: 10_000 })
  const conns = [new PassThrough(), new PassThrough(), new PassThrough()]
  for (const c of conns) pool.release('k', c)
  assert.deepEqual(conns.map(c => c.destroyed), [false, false, true])
  pool.close()
  assert.deepEqual(conns.map(c => c.destroyed), [true, true, true])
  const late = new PassThrough()
  pool.release('k', late)
  assert.equal(late.destroyed, true)
})
