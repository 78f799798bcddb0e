// The data path's pool of ready connections: how many it keeps per peer, and
// how that follows misses. Sockets are stand-ins: the pool only asks whether
// they are open and closes them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import type { TLSSocket } from 'node:tls'
import { ConnectionPool, IDLE_MS } from '../../../src/datapath/pool.ts'
import type { Pooled } from '../../../src/datapath/pool.ts'

function conn (path: Pooled['path'] = 'direct'): Pooled {
  const socket = Object.assign(new EventEmitter(), { destroyed: false, readyState: 'open' })
  const destroy = (): void => { socket.destroyed = true; socket.emit('close') }
  return { socket: Object.assign(socket, { destroy }) as unknown as TLSSocket, path, at: Date.now() }
}

test('each miss keeps one more for that peer, up to four times the size; a quiet peer goes back to the size', (t) => {
  t.mock.timers.enable({ apis: ['Date'] })
  const pool = new ConnectionPool({ size: 2 })
  assert.equal(pool.missing('b'), 2)
  for (let i = 0; i < 10; i++) assert.equal(pool.take('b'), undefined)
  assert.equal(pool.size('b'), 8)
  assert.equal(pool.size('c'), 2, 'other peers keep the size')
  t.mock.timers.tick(IDLE_MS - 1)
  assert.equal(pool.size('b'), 8)
  t.mock.timers.tick(1)
  assert.equal(pool.size('b'), 2)
})

test('a pool of size 0 keeps nothing, misses or not', () => {
  const pool = new ConnectionPool({ size: 0 })
  assert.equal(pool.take('b'), undefined)
  assert.equal(pool.missing('b'), 0)
  const c = conn()
  pool.add('b', c)
  assert.equal(c.socket.destroyed, true)
})

test('take gives direct before relayed, skips closed and unusable ones; add closes what is beyond the size', () => {
  const usable = new Set(['b'])
  const pool = new ConnectionPool({ size: 3, usable: (nodeName, p) => p.path !== 'punched' || usable.has(nodeName) })
  const relayed = conn('relay')
  const direct = conn('direct')
  const punched = conn('punched')
  pool.add('b', relayed)
  pool.add('b', direct)
  pool.add('b', punched)
  const extra = conn()
  pool.add('b', extra)
  assert.equal(extra.socket.destroyed, true, 'beyond the size')
  usable.delete('b')
  // punched went in last but before the relayed one: direct paths first.
  assert.equal(pool.take('b'), direct)
  assert.equal(pool.take('b'), relayed, 'the punched one is skipped: its path is gone')
  assert.equal(punched.socket.destroyed, true)
  const closed = conn()
  pool.add('c', closed)
  closed.socket.destroy()
  assert.equal(pool.take('c'), undefined, 'a connection that closed left the pool')
})

test('missing counts connections on their way; fill adds what they give; close closes everything and keeps nothing after', async () => {
  const pool = new ConnectionPool({ size: 2 })
  let finish: ((p: Pooled) => void) | undefined
  pool.fill('b', 2, async () => await new Promise<Pooled>(resolve => { finish = resolve }))
  assert.equal(pool.missing('b'), 0)
  const made = conn()
  finish?.(made)
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(pool.take('b'), made)
  const held = conn()
  pool.add('b', held)
  pool.close()
  assert.equal(held.socket.destroyed, true)
  const late = conn()
  pool.add('b', late)
  assert.equal(late.socket.destroyed, true, 'added after close')
  assert.equal(pool.missing('b'), 0)
})

test('a connection lent to a framed proxied connection counts as coming back for a second, and comes back without piling up listeners', (t) => {
  t.mock.timers.enable({ apis: ['Date'] })
  const pool = new ConnectionPool({ size: 2 })
  const c = conn()
  pool.add('b', c)
  const taken = pool.take('b') as Pooled
  assert.equal(taken, c)
  pool.lend('b', taken.socket)
  // One pooled spare is missing, not two: the lent one is on its way back.
  assert.equal(pool.missing('b'), 1)
  t.mock.timers.tick(1000)
  // A proxied connection out this long may be a long one: it no longer counts.
  assert.equal(pool.missing('b'), 2)
  for (let i = 0; i < 20; i++) {
    pool.add('b', { ...taken, at: Date.now() })
    assert.equal(pool.take('b')?.socket, taken.socket)
    pool.lend('b', taken.socket)
  }
  const emitter = taken.socket as unknown as EventEmitter
  assert.equal(emitter.listenerCount('close'), 1)
  assert.equal(emitter.listenerCount('error'), 1)
  // A lent connection that closes is no longer counted.
  assert.equal(pool.missing('b'), 1)
  taken.socket.destroy()
  assert.equal(pool.missing('b'), 2)
})
