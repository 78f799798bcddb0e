import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { Http1Pool } from '../../../src/gateway/http1-pool.ts'

test('a released connection is lent again, most recent first, per endpoint; its events go to whoever uses it', () => {
  const pool = new Http1Pool({ maxIdlePerKey: 4, idleMs: 10_000 })
  const a = pool.adopt(new PassThrough(), '10.0.0.1:80')
  const b = pool.adopt(new PassThrough(), '10.0.0.1:80')
  pool.release(a)
  pool.release(b)
  assert.equal(pool.take('10.0.0.2:80'), undefined)
  assert.equal(pool.take('10.0.0.1:80'), b)
  assert.equal(pool.take('10.0.0.1:80'), a)
  assert.equal(pool.take('10.0.0.1:80'), undefined)
  const got: string[] = []
  a.user = { onUpstreamData: chunk => got.push(chunk.toString()), onUpstreamGone: () => got.push('gone') }
  a.socket.write('HTTP/1.1 200 OK\r\n')
  a.socket.destroy()
  return sleep(5).then(() => {
    assert.deepEqual(got, ['HTTP/1.1 200 OK\r\n', 'gone'])
    assert.equal(b.socket.destroyed, false)
    pool.close()
  })
})

test('idle connections that close, send bytes or outstay their time leave the pool and are closed', async () => {
  const pool = new Http1Pool({ maxIdlePerKey: 4, idleMs: 50 })
  const closed = pool.adopt(new PassThrough(), 'k')
  const chatty = pool.adopt(new PassThrough(), 'k')
  const old = pool.adopt(new PassThrough(), 'k')
  pool.release(closed)
  pool.release(chatty)
  closed.socket.destroy()
  chatty.socket.write('HTTP/1.1 408 Request Timeout\r\n\r\n')
  await sleep(5)
  assert.equal(chatty.socket.destroyed, true)
  assert.equal(pool.size, 0)
  pool.release(old, 20)
  await sleep(40)
  // Past its time it is not lent, and it is closed.
  assert.equal(pool.take('k'), undefined)
  assert.equal(old.socket.destroyed, true)
  pool.close()
})

test('past the cap, and after close, released connections are closed instead of kept', () => {
  const pool = new Http1Pool({ maxIdlePerKey: 2, idleMs: 10_000 })
  const conns = [pool.adopt(new PassThrough(), 'k'), pool.adopt(new PassThrough(), 'k'), pool.adopt(new PassThrough(), 'k')]
  for (const c of conns) pool.release(c)
  assert.deepEqual(conns.map(c => c.socket.destroyed), [false, false, true])
  pool.close()
  assert.deepEqual(conns.map(c => c.socket.destroyed), [true, true, true])
  const late = pool.adopt(new PassThrough(), 'k')
  pool.release(late)
  assert.equal(late.socket.destroyed, true)
})
