import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  Lab, TopologyError, loadTopology, mini, natRuleset, parseRate, seed, tbfParams, validateTopology, withLab
} from '../../lab/index.ts'
import type { Topology } from '../../lab/index.ts'
import { isRoot } from './helpers.ts'

describe('topology descriptions', () => {
  test('seed and mini are valid; seed has the documented shape', () => {
    validateTopology(seed)
    validateTopology(mini)
    const nats = seed.sites.map(s => s.nat?.mode)
    assert.deepEqual(nats, [undefined, 'masquerade', 'fully-random'])
    assert.deepEqual(seed.sites[0]?.nodes.map(n => n.name), ['k8s-master', 'k8s-node1'])
    assert.equal(seed.sites[1]?.subnet, seed.sites[2]?.subnet, 'both edge sites share a subnet on purpose')
  })

  test('validation names the problem', () => {
    const bad = (change: (t: Topology) => void): Topology => {
      const t = structuredClone(seed)
      change(t)
      return t
    }
    assert.throws(() => validateTopology(bad(t => { t.sites[1]!.nodes[0]!.address = '10.0.0.5' })), /edge-a1.*not inside 192\.168\.1\.0\/24/)
    assert.throws(() => validateTopology(bad(t => { t.sites[2]!.nodes[0]!.name = 'edge-a1' })), /"edge-a1" is used twice/)
    assert.throws(() => validateTopology(bad(t => { t.sites[0]!.nodes[0]!.bandwidth = { rate: 'fast' } })), TopologyError)
    assert.throws(() => validateTopology(bad(t => { t.name = 'Seed-1' })), /name must be/)
  })

  test('a scenario can live in a YAML file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eml-topo-'))
    try {
      const file = join(dir, 'two.yaml')
      await writeFile(file, [
        'name: two',
        'description: one relay, one edge node behind masquerade',
        'wan: { subnet: 203.0.113.0/24 }',
        'sites:',
        '  - name: cloud',
        '    nodes: [{ name: relay, address: 203.0.113.10 }]',
        '  - name: home',
        '    subnet: 10.9.0.0/24',
        '    nat: { name: gw, mode: masquerade, publicAddress: 203.0.113.1, lanAddress: 10.9.0.1 }',
        '    nodes: [{ name: edge, address: 10.9.0.2, bandwidth: { rate: 8mbit } }]',
        ''
      ].join('\n'))
      const t = await loadTopology(file)
      assert.equal(t.name, 'two')
      assert.equal(t.sites[1]?.nodes[0]?.bandwidth?.rate, '8mbit')
      await assert.rejects(loadTopology('nope'), /unknown topology "nope"/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('rates, tbf defaults and NAT rules', () => {
    assert.equal(parseRate('16mbit'), 16e6)
    assert.equal(parseRate('500kbit'), 5e5)
    assert.deepEqual(tbfParams({ rate: '16mbit' }), { rate: '16mbit', burst: '40000', latency: '50ms' })
    assert.match(natRuleset('fully-random'), /masquerade fully-random/)
    assert.doesNotMatch(natRuleset('masquerade'), /random/)
    assert.match(natRuleset('masquerade'), /chain forward_filter \{[^}]*policy drop/)
  })

  test('withLab tears the lab down when its test ends', { skip: isRoot ? false : 'needs root' }, async (t) => {
    let id = ''
    await t.test('inner', async (t2) => {
      const lab = await withLab(t2, mini)
      id = lab.id
      assert.ok(existsSync(`/run/netns/${lab.netns('cone1')}`))
      const r = await lab.exec('cone1', ['sh', '-c', 'echo $NODE_NAME'])
      assert.equal(r.stdout.trim(), 'cone1')
    })
    assert.notEqual(id, '')
    assert.equal(existsSync(`/run/netns/eml-${id}-cone1`), false)
    assert.equal(existsSync(`/run/edgemesh-lab/${id}.json`), false)
  })

  test('lab ids are checked', async () => {
    await assert.rejects(Lab.up(mini, { id: 'Bad-Id' }), /lab id "Bad-Id"/)
  })
})
