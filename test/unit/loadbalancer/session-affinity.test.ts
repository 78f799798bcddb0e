import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RoundRobinPolicy } from '../../../src/loadbalancer/round-robin.ts'
import { SessionAffinityPolicy } from '../../../src/loadbalancer/session-affinity.ts'
import { eps, fakeClock } from './fixtures.ts'

function setup (timeoutSeconds = 10): { p: SessionAffinityPolicy, clock: ReturnType<typeof fakeClock> } {
  const clock = fakeClock(1_000)
  const p = new SessionAffinityPolicy({ inner: new RoundRobinPolicy({ random: () => 0 }), timeoutSeconds, now: clock.now })
  return { p, clock }
}

test('ClientIP: a client keeps its endpoint; other clients go round robin', () => {
  const { p } = setup()
  const list = eps(3)
  const a = p.pick(list, { clientIP: '192.168.1.1' })?.ip
  const b = p.pick(list, { clientIP: '192.168.1.2' })?.ip
  assert.equal(a, '10.0.0.1')
  assert.equal(b, '10.0.0.2')
  for (let i = 0; i < 5; i++) assert.equal(p.pick(list, { clientIP: '192.168.1.1', clientPort: 1000 + i })?.ip, a)
  // no client IP: inner policy, no entry
  assert.equal(p.pick(list, {})?.ip, '10.0.0.3')
  assert.equal(p.size, 2)
})

test('ClientIP: the timeout is a sliding window (fake clock)', () => {
  const steps: Array<{ advanceMs: number, want: string }> = [
    { advanceMs: 0, want: '10.0.0.1' }, // creates the entry
    { advanceMs: 9_999, want: '10.0.0.1' }, // within 10 s, refreshes
    { advanceMs: 9_999, want: '10.0.0.1' }, // within 10 s of the last use
    { advanceMs: 10_000, want: '10.0.0.2' } // expired: next round-robin pick
  ]
  const { p, clock } = setup(10)
  const list = eps(3)
  for (const [i, s] of steps.entries()) {
    clock.advance(s.advanceMs)
    assert.equal(p.pick(list, { clientIP: 'c' })?.ip, s.want, `step ${i}`)
  }
})

test('ClientIP: entries are dropped when the endpoint disappears or expires', () => {
  const { p, clock } = setup(10)
  const list = eps(3)
  p.pick(list, { clientIP: 'a' }) // → .1
  p.pick(list, { clientIP: 'b' }) // → .2
  p.onEndpointsChanged(list.slice(1))
  assert.equal(p.size, 1)
  // even without the notification, a vanished endpoint is not returned
  assert.equal(p.pick(list.slice(2), { clientIP: 'b' })?.ip, '10.0.0.3')
  clock.advance(10_000)
  p.sweep()
  assert.equal(p.size, 0)
})

test('ClientIP: a retry excluding the sticky endpoint re-pins the client', () => {
  const { p } = setup()
  const list = eps(3)
  assert.equal(p.pick(list, { clientIP: 'a' })?.ip, '10.0.0.1')
  assert.equal(p.pick(list, { clientIP: 'a', exclude: new Set(['10.0.0.1:8080']) })?.ip, '10.0.0.2')
  assert.equal(p.pick(list, { clientIP: 'a' })?.ip, '10.0.0.2')
  assert.equal(p.pick([], { clientIP: 'a' }), undefined)
})
