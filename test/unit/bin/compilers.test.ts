// The compilers come on in the first window where the process used its busy
// share of a core, once, and never while it idles.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { turnOnCompilersWhenBusy } from '../../../src/bin/compilers.ts'

test('idle windows leave them off; the first busy one turns them on, once', async () => {
  let micros = 0
  let turnedOn = 0
  const stop = turnOnCompilersWhenBusy({ turnOn: () => { turnedOn++ }, cpuUsage: () => ({ user: micros, system: 0 }), everyMs: 20, busyShare: 0.05 })
  try {
    // 0.5 % of a core per window (100 µs of 20 ms): idle.
    for (let i = 0; i < 10; i++) { micros += 100; await sleep(20) }
    assert.equal(turnedOn, 0)
    // 10 % of a core in one window: busy.
    micros += 2000
    await sleep(60)
    assert.equal(turnedOn, 1)
    micros += 100_000
    await sleep(60)
    assert.equal(turnedOn, 1, 'only once')
  } finally {
    stop()
  }
})

test('stopped, it turns nothing on', async () => {
  let micros = 0
  let turnedOn = 0
  const stop = turnOnCompilersWhenBusy({ turnOn: () => { turnedOn++ }, cpuUsage: () => ({ user: micros, system: micros }), everyMs: 10 })
  stop()
  micros += 1_000_000
  await sleep(50)
  assert.equal(turnedOn, 0)
})
