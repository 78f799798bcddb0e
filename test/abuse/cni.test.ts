// The edge CNI's channel (a data path channel, so only PSK holders reach it)
// against PSK holders that abuse it: a node holding no block is closed at
// once, packets from or to another node's pods are dropped, and so are
// packets whose offload header asks what the device never would, a peer gets at
// most 4 channels, a frame shorter than an IPv4 header closes its channel,
// and the peer's real packets still go through. The router opens a TUN
// device, so the harness runs in a network namespace of its own.
import { describe, test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const harness = fileURLToPath(new URL('./cni-harness.ts', import.meta.url))
const ns = `emcniab${process.pid % 100_000}`
const skip = process.getuid?.() !== 0 ? 'needs root (a network namespace and a TUN device)' : false

describe('edge CNI channel under abuse', { skip }, () => {
  after(() => { spawnSync('ip', ['netns', 'del', ns]) })

  test('strangers, spoofed packets, extra channels and short frames are refused; real packets pass', () => {
    execFileSync('ip', ['netns', 'add', ns])
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up'])
    const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, harness], { encoding: 'utf8', timeout: 60_000 })
    const r = JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>
    assert.equal(r.strangerClosed, true, 'a node with no block is closed')
    assert.equal(r.refusedNoBlock, 1)
    assert.equal(r.spoofedDropped, 2, 'from another node\'s pods, and to another node\'s pods')
    assert.equal(r.badHeaderDropped, 2, 'offload metadata the device would not give')
    assert.equal(r.delivered, 1, 'the peer\'s own packet to our pods reaches the device')
    assert.equal(r.peerStillOpen, true, 'dropping a packet does not close the channel')
    assert.deepEqual(r.extraClosed, [false, false, false, true], 'four channels per peer, the fifth is closed')
    assert.equal(r.refusedTooMany, 1)
    assert.equal(r.shortFrameClosed, true)
  })
})
