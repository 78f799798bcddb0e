import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PeerPins } from '../../../src/tunnel/identities.ts'

test('pins: first claim wins, concurrent pins all land in the file (0600), and a reload keeps them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-pins-'))
  try {
    const file = join(dir, 'state', 'tunnel-peers.json')
    const pins = new PeerPins(file)
    await pins.load()
    const results = await Promise.all(Array.from({ length: 20 }, async (_, i) => await pins.pin(`node-${i}`, `peer-${i}`)))
    assert.deepEqual(new Set(results), new Set(['new']))
    assert.equal(await pins.pin('node-3', 'peer-3'), 'same')
    assert.equal(await pins.pin('node-3', 'someone-else'), 'conflict')
    assert.equal(statSync(file).mode & 0o777, 0o600)
    const again = new PeerPins(file)
    await again.load()
    for (let i = 0; i < 20; i++) assert.equal(again.get(`node-${i}`), `peer-${i}`)
    assert.equal(Object.keys(JSON.parse(readFileSync(file, 'utf8'))).length, 20)
    writeFileSync(file, '{not json')
    await assert.rejects(new PeerPins(file).load(), (err: Error & { code?: string }) => err.code === 'EM_ERR_TUNNEL_IDENTITY' && err.message.includes(file))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
