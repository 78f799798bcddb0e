// TurboFan comes on once the process used its busy share of a core for
// two windows in a row, once, and never while it idles or for one burst.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { turnOnTurboFanWhenBusy } from '../../../src/bin/turbofan.ts'

test('idle windows and a single busy one leave them off; two busy ones in a row turn them on, once', async () => {
  let micros = 0
  let turnedOn = 0
  const isOn = (): boolean => turnedOn > 0
  const stop = turnOnTurboFanWhenBusy({ turnOn: () => { turnedOn++ }, cpuUsage: () => ({ user: micros, system: 0 }), everyMs: 20, busyShare: 0.05, busyWindows: 2 })
  try {
    // 0.5 % of a core per window (100 µs of 20 ms): idle.
    for (let i = 0; i < 10; i++) { micros += 100; await sleep(20) }
    assert.equal(turnedOn, 0)
    // 10 % of a core in one window, then idle: a burst.
    micros += 2000
    for (let i = 0; i < 5; i++) { await sleep(20); micros += 100 }
    assert.equal(turnedOn, 0, 'one burst')
    // 10 % in window after window: work.
    // (Half-window steps, so every window sees some of it.)
    for (let i = 0; i < 200 && !isOn(); i++) { micros += 1000; await sleep(10) }
    assert.equal(turnedOn, 1)
    micros += 100_000
    await sleep(60)
    assert.equal(turnedOn, 1, 'only once')
  } finally {
    stop()
  }
})

test('one window at the burst share turns it on', async () => {
  let micros = 0
  let share = 0
  const stop = turnOnTurboFanWhenBusy({ turnOn: s => { share = s }, cpuUsage: () => ({ user: micros, system: 0 }), everyMs: 20, busyShare: 0.05, burstShare: 0.5 })
  try {
    // A whole core's worth at once, then nothing.
    micros += 20_000
    await sleep(60)
    assert.ok(share >= 0.5, `turned on at ${share}`)
  } finally {
    stop()
  }
})

test('stopped, it turns nothing on', async () => {
  let micros = 0
  let turnedOn = 0
  const stop = turnOnTurboFanWhenBusy({ turnOn: () => { turnedOn++ }, cpuUsage: () => ({ user: micros, system: micros }), everyMs: 10 })
  stop()
  micros += 1_000_000
  await sleep(50)
  assert.equal(turnedOn, 0)
})
