import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { publicPskReason, readPnetKey, TunnelPskError } from '../../../src/mesh/index.ts'

test('the install guide\'s placeholder and upstream\'s chart default are refused; real PSKs are not', async () => {
  assert.match(publicPskReason('<your-psk-string>') ?? '', /placeholder/)
  assert.match(publicPskReason('JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=\n') ?? '', /upstream/)
  assert.match(publicPskReason('<psk>') ?? '', /placeholder/)
  assert.equal(publicPskReason('Xq3Ue0m2m0dU4cQ0pU3q9l0bNw2yF4tC8kS1rH7vZ5A='), undefined)
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-psk-'))
  try {
    await writeFile(join(dir, 'psk'), 'JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=')
    await assert.rejects(readPnetKey(join(dir, 'psk')), (err: unknown) =>
      err instanceof TunnelPskError && err.code === 'EM_ERR_TUNNEL_PSK' && err.message.includes(join(dir, 'psk')) && /edgemesh psk generate/.test(err.message))
    await writeFile(join(dir, 'psk'), 'a secret PSK of the cluster')
    assert.equal((await readPnetKey(join(dir, 'psk'))).length, 32)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
