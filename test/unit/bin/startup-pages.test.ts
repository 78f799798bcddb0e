// The start's pages are released once, after the wait, when the agent idles;
// a busy agent keeps them. Only unmodified read-only file mappings are chosen.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { releaseStartupPagesWhenIdle, unmodifiedFileMappings } from '../../../src/bin/startup-pages.ts'

test('released once: after the wait, and only when the last windows in a row were idle', async () => {
  let micros = 0
  let released = 0
  const isReleased = (): boolean => released > 0
  const stop = releaseStartupPagesWhenIdle({ release: () => { released++ }, cpuUsage: () => ({ user: micros, system: 0 }), everyMs: 20, afterWindows: 6, idleShare: 0.05, idleWindows: 3 })
  try {
    // Idle from the start: not before the sixth window.
    await sleep(20 * 4)
    assert.equal(released, 0, 'before the wait')
    // Busy (50 % of a core) for a while: kept.
    for (let i = 0; i < 10; i++) { micros += 5000; await sleep(10) }
    assert.equal(released, 0, 'while busy')
    // Idle again: released after three idle windows, once.
    for (let i = 0; i < 100 && !isReleased(); i++) await sleep(10)
    assert.equal(released, 1)
    await sleep(100)
    assert.equal(released, 1, 'only once')
  } finally {
    stop()
  }
})

test('an agent that never idles keeps its pages', async () => {
  let micros = 0
  let released = 0
  const stop = releaseStartupPagesWhenIdle({ release: () => { released++ }, cpuUsage: () => ({ user: micros, system: 0 }), everyMs: 20, afterWindows: 1 })
  try {
    for (let i = 0; i < 30; i++) { micros += 2000; await sleep(10) }
    assert.equal(released, 0)
  } finally {
    stop()
  }
})

test('read-only file mappings without private copies only: no writable, relocated, anonymous, heap, vdso or deleted ones', () => {
  const smaps = [
    '55d0c0a00000-55d0c0e00000 r--p 00000000 fd:01 131 /usr/local/bin/node',
    'Rss:                4000 kB',
    'Anonymous:             0 kB',
    '55d0c0e00000-55d0c2a00000 r-xp 00400000 fd:01 131 /usr/local/bin/node',
    'Anonymous:             0 kB',
    // The loader's relocated segment: read-only now, but its pages are private copies.
    '55d0c2a00000-55d0c2b00000 r--p 02000000 fd:01 131 /usr/local/bin/node',
    'Anonymous:           900 kB',
    '55d0c2b00000-55d0c2c00000 rw-p 02100000 fd:01 131 /usr/local/bin/node',
    'Anonymous:             0 kB',
    '55d0c4000000-55d0c4100000 rw-p 00000000 00:00 0                          [heap]',
    '7f0000000000-7f0000021000 r--p 00000000 00:00 0 ',
    '7f1000000000-7f1000001000 r--s 00000000 00:05 42 /dev/shm/x',
    '7f2000000000-7f2000002000 r--p 00000000 fd:01 77 /tmp/gone (deleted)',
    '7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]',
    '7f3000000000-7f3000010000 r-xp 00020000 fd:01 88 /usr/lib/x86_64-linux-gnu/libc.so.6',
    'Anonymous:             0 kB',
    'VmFlags: rd ex mr mw me sd'
  ].join('\n')
  assert.deepEqual(unmodifiedFileMappings(smaps), [
    { start: 0x55d0c0a00000n, length: 0x400000, path: '/usr/local/bin/node' },
    { start: 0x55d0c0e00000n, length: 0x1c00000, path: '/usr/local/bin/node' },
    { start: 0x7f3000000000n, length: 0x10000, path: '/usr/lib/x86_64-linux-gnu/libc.so.6' }
  ])
})
