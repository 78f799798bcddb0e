import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RoundRobinPolicy } from '../../../src/loadbalancer/round-robin.ts'
import { ep, eps, seeded, tally } from './fixtures.ts'

test('ROUND_ROBIN: cycles in key order from a random start, whatever the input order', () => {
  const p = new RoundRobinPolicy({ random: () => 0.5 })
  const list = [ep('10.0.0.3'), ep('10.0.0.1'), ep('10.0.0.2'), ep('10.0.0.4')]
  const picks = Array.from({ length: 8 }, () => p.pick(list, {})?.ip)
  assert.deepEqual(picks, ['10.0.0.3', '10.0.0.4', '10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.1', '10.0.0.2'])
  // a reordered copy of the same set does not move the cursor
  assert.equal(p.pick([...list].reverse(), {})?.ip, '10.0.0.3')
})

test('ROUND_ROBIN: exactly fair over a stable set', () => {
  const p = new RoundRobinPolicy({ random: seeded(7) })
  const list = eps(5)
  const counts = tally(Array.from({ length: 5000 }, () => p.pick(list, {})))
  assert.deepEqual([...counts.values()], [1000, 1000, 1000, 1000, 1000])
})

test('ROUND_ROBIN: endpoint changes keep the position (by key, not index)', () => {
  const p = new RoundRobinPolicy({ random: () => 0 })
  const a = ep('10.0.0.1'); const b = ep('10.0.0.2'); const c = ep('10.0.0.3'); const d = ep('10.0.0.4')
  const steps: Array<{ list: typeof a[], want: string }> = [
    { list: [a, b, c], want: '10.0.0.1' },
    { list: [a, b, c], want: '10.0.0.2' },
    // 10.0.0.2 (the cursor) removed: continue with the next key, not restart
    { list: [a, c], want: '10.0.0.3' },
    // 10.0.0.4 added after the cursor: it gets its turn in order
    { list: [a, c, d], want: '10.0.0.4' },
    { list: [a, c, d], want: '10.0.0.1' },
    // an endpoint added before the cursor waits for the wrap
    { list: [a, b, c, d], want: '10.0.0.2' },
    { list: [a, b, c, d], want: '10.0.0.3' }
  ]
  for (const [i, s] of steps.entries()) assert.equal(p.pick(s.list, {})?.ip, s.want, `step ${i}`)
})

test('ROUND_ROBIN: fair while endpoints churn (no endpoint starved or doubled)', () => {
  const p = new RoundRobinPolicy({ random: seeded(3) })
  const rnd = seeded(11)
  const base = eps(6)
  const counts = new Map<string, number>()
  for (let round = 0; round < 200; round++) {
    // drop one random endpoint for this round (a rolling restart)
    const drop = Math.floor(rnd() * base.length)
    const list = base.filter((_, i) => i !== drop)
    for (let i = 0; i < list.length; i++) {
      const ip = p.pick(list, {})?.ip as string
      counts.set(ip, (counts.get(ip) ?? 0) + 1)
    }
  }
  // 200 rounds × 5 picks, each endpoint present ~5/6 of the rounds: ~166 each
  for (const [ip, c] of counts) assert.ok(c > 130 && c < 200, `${ip}: ${c}`)
})

test('ROUND_ROBIN: exclusion skips tried endpoints; undefined when none left', () => {
  const p = new RoundRobinPolicy({ random: () => 0, portName: 'http' })
  const list = eps(3, { portName: 'http', port: 80 })
  assert.equal(p.pick(list, { exclude: new Set(['10.0.0.1:80']) })?.ip, '10.0.0.2')
  assert.equal(p.pick(list, { exclude: new Set(['10.0.0.3:80', '10.0.0.1:80']) })?.ip, '10.0.0.2')
  assert.equal(p.pick(list, { exclude: new Set(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']) }), undefined)
  assert.equal(p.pick([], {}), undefined)
})
