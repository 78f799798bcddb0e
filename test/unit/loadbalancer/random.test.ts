import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RandomPolicy } from '../../../src/loadbalancer/random.ts'
import { eps, seeded, tally } from './fixtures.ts'

test('RANDOM: uniform within statistical bounds (seeded)', () => {
  const p = new RandomPolicy({ random: seeded(1) })
  const list = eps(4)
  const n = 40_000
  const counts = tally(Array.from({ length: n }, () => p.pick(list, {})))
  assert.equal(counts.size, 4)
  // expected 10_000 each, sd ≈ 87: ±5 sd
  for (const c of counts.values()) assert.ok(Math.abs(c - n / 4) < 435, `count ${c}`)
})

test('RANDOM: exclusion and edge cases', () => {
  const cases: Array<{ name: string, n: number, exclude: string[], random: number, want: string | undefined }> = [
    { name: 'no endpoints', n: 0, exclude: [], random: 0.5, want: undefined },
    { name: 'all excluded', n: 2, exclude: ['10.0.0.1:8080', '10.0.0.2:8080'], random: 0.5, want: undefined },
    { name: 'one left', n: 3, exclude: ['10.0.0.1:8080', '10.0.0.3:8080'], random: 0.99, want: '10.0.0.2' },
    { name: 'random() close to 1 stays in range', n: 3, exclude: [], random: 0.9999999999999999, want: '10.0.0.3' },
    { name: 'random() 0', n: 3, exclude: [], random: 0, want: '10.0.0.1' }
  ]
  for (const c of cases) {
    const p = new RandomPolicy({ random: () => c.random })
    assert.equal(p.pick(eps(c.n), { exclude: new Set(c.exclude) })?.ip, c.want, c.name)
  }
})
