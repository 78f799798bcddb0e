// The kernel's listen-queue overflow counter, read from the real /proc/net/netstat
// after a real overflow on loopback.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { ListenOverflowWatch, parseListenOverflows } from '../../../src/net/listen-overflows.ts'
import { eventually } from '../../helpers/control-plane.ts'
import { overflowListenQueue } from '../../helpers/net.ts'

describe('ListenOverflowWatch', { skip: existsSync('/proc/net/netstat') ? false : 'no /proc/net/netstat' }, () => {
  test('parses TcpExt ListenOverflows, and nothing from text without it', () => {
    const text = 'TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 17 17\nIpExt: InNoRoutes\nIpExt: 0\n'
    assert.equal(parseListenOverflows(text), 17)
    assert.equal(parseListenOverflows('IpExt: InNoRoutes\nIpExt: 0\n'), undefined)
    assert.equal(parseListenOverflows('TcpExt: ListenOverflows\nTcpExt: x\n'), undefined)
  })

  test('reports the connections a full accept queue dropped', async () => {
    const seen: number[] = []
    const watch = new ListenOverflowWatch(n => seen.push(n), { everyMs: 100 })
    await watch.start()
    try {
      await overflowListenQueue()
      await eventually('an overflow reported', () => seen.length > 0, 3000, 20)
      assert.ok(seen.every(n => n > 0), String(seen))
    } finally {
      watch.stop()
    }
  })
})
