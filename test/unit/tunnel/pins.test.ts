import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { loadOrCreateKey, PeerPins } from '../../../src/tunnel/identities.ts'

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

/** A state directory even root cannot write to (immutable, as a read-only mount would be); undone after `use`. */
async function unwritableDir (use: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-pins-'))
  execFileSync('chattr', ['+i', dir])
  try {
    await use(dir)
  } finally {
    execFileSync('chattr', ['-i', dir])
    rmSync(dir, { recursive: true, force: true })
  }
}

const CAN_CHATTR = (() => { try { execFileSync('chattr', ['--help'], { stdio: 'ignore' }) } catch (err) { return (err as { status?: number }).status !== undefined } return true })() && process.getuid?.() === 0

test('pins that cannot be saved still hold, and the failure is reported', { skip: CAN_CHATTR ? false : 'needs root and chattr' }, async () => {
  await unwritableDir(async dir => {
    const failures: Error[] = []
    const pins = new PeerPins(join(dir, 'tunnel-peers.json'), err => failures.push(err))
    await pins.load()
    assert.equal(await pins.pin('node-1', 'peer-1'), 'new')
    assert.equal(await pins.pin('node-1', 'peer-1'), 'same')
    assert.equal(await pins.pin('node-1', 'someone-else'), 'conflict')
    assert.equal(failures.length, 1)
    assert.match(failures[0]?.message ?? '', /EPERM|EACCES|EROFS/)
  })
})

test('a new key that cannot be saved names the file and the state directory', { skip: CAN_CHATTR ? false : 'needs root and chattr' }, async () => {
  await unwritableDir(async dir => {
    const file = join(dir, 'tunnel-identity.key')
    await assert.rejects(loadOrCreateKey(file), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'EM_ERR_TUNNEL_IDENTITY')
      assert.ok(err.message.includes(file))
      assert.match(err.message, /cannot save a new key \(EPERM\).*commonConfig\.stateDir/)
      return true
    })
  })
})
