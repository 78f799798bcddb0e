import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Lab, mini, parseRate, workload } from '../../lab/index.ts'
import { probe, rootOnly } from './helpers.ts'

interface BulkResult { direction: string, bytes: number, seconds: number, bitsPerSecond: number }

describe('mini topology: NAT behaviours and bandwidth', rootOnly, () => {
  let lab: Lab

  before(async () => {
    lab = await Lab.up(mini, { id: Lab.newId() })
    const procs = [
      lab.spawn('relay1', workload('echo', 'udp', '--port', '3478', '--reflect')),
      lab.spawn('relay2', workload('echo', 'udp', '--port', '3478', '--reflect')),
      lab.spawn('relay1', workload('bulk', 'server', '--port', '5201'))
    ]
    await Promise.all(procs.map(p => p.waitForOutput('listening')))
  })

  after(async () => {
    await lab?.down()
  })

  const targets = (): string[] => ['relay1', 'relay2'].map(n => `${lab.address(n)}:3478`)

  test('masquerade: one source port maps to the same public port for both destinations', async () => {
    const r = await probe(lab, 'cone1', 'udp', targets(), ['--local-port', '41000'])
    const seen = `${lab.address('nat-cone')}:41000`
    assert.deepEqual(r.map(x => x.reply), [seen, seen], JSON.stringify(r))
  })

  test('fully-random: one source port maps to a different public port per destination', async () => {
    const r = await probe(lab, 'sym1', 'udp', targets(), ['--local-port', '41000'])
    assert.ok(r.every(x => x.ok && x.reply?.startsWith(`${lab.address('nat-sym')}:`)), JSON.stringify(r))
    assert.notEqual(r[0]?.reply, r[1]?.reply, JSON.stringify(r))
  })

  for (const direction of ['up', 'down'] as const) {
    test(`tbf limit holds within 20% (${direction}load across cone1's link)`, async (t) => {
      const limit = parseRate(mini.sites.flatMap(s => s.nodes).find(n => n.name === 'cone1')?.bandwidth?.rate ?? '')
      // About two seconds of traffic at the limit.
      const bytes = String(Math.round(limit / 8 * 2))
      const r = await lab.exec('cone1', workload('bulk', 'client', `${lab.address('relay1')}:5201`, direction, '--bytes', bytes), { timeoutMs: 30_000 })
      assert.equal(r.code, 0, r.stderr)
      const result = JSON.parse(r.stdout) as BulkResult
      const ratio = result.bitsPerSecond / limit
      t.diagnostic(`${direction}: ${(result.bitsPerSecond / 1e6).toFixed(2)} Mbit/s of ${limit / 1e6} (${(ratio * 100).toFixed(1)}%)`)
      assert.ok(ratio > 0.8 && ratio < 1.2, `measured ${(result.bitsPerSecond / 1e6).toFixed(2)} Mbit/s for a ${limit / 1e6} Mbit/s limit (${(ratio * 100).toFixed(0)}%)`)
    })
  }

  test('an unlimited link is much faster than the limit (the limit is what we measured)', async () => {
    const r = await lab.exec('relay2', workload('bulk', 'client', `${lab.address('relay1')}:5201`, 'up', '--bytes', '20000000'), { timeoutMs: 30_000 })
    assert.equal(r.code, 0, r.stderr)
    const result = JSON.parse(r.stdout) as BulkResult
    assert.ok(result.bitsPerSecond > 3 * parseRate('16mbit'), `unlimited link only ${(result.bitsPerSecond / 1e6).toFixed(1)} Mbit/s`)
  })
})
