import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { chainName, renderDiff, renderReplace, ruleKey } from '../../../src/proxy/rules.ts'
import type { PortRule } from '../../../src/proxy/rules.ts'
import { parseTable } from '../../../src/proxy/nftables.ts'
import { parseRequestHead } from '../../../src/proxy/http-peek.ts'

function userspace (ip: string, port: number, listen: number): PortRule {
  return { ip, protocol: 'tcp', port, comment: `default/s:${port}`, target: { kind: 'userspace', listener: { ip: '169.254.96.16', port: listen } } }
}
function kernel (ip: string, port: number, eps: number[], affinitySeconds = 0): PortRule {
  return { ip, protocol: 'tcp', port, comment: `default/k:${port}`, target: { kind: 'kernel', endpoints: eps.map(p => ({ ip: '10.0.0.1', port: p })), pick: 'round-robin', affinitySeconds } }
}
function byKey (...rules: PortRule[]): Map<string, PortRule> {
  return new Map(rules.map(r => [ruleKey(r), r]))
}

describe('nftables rendering', () => {
  test('an unchanged rule set renders nothing', () => {
    const rules = byKey(userspace('10.96.0.1', 80, 4000), kernel('10.96.0.2', 80, [8080, 8081]))
    assert.deepEqual(renderDiff(rules, new Map(rules)), [])
  })

  test('one changed service touches only its own element and chain', () => {
    const before = byKey(userspace('10.96.0.1', 80, 4000), kernel('10.96.0.2', 80, [8080]), kernel('10.96.0.3', 80, [8080]))
    const after = byKey(userspace('10.96.0.1', 80, 4000), kernel('10.96.0.2', 80, [8080, 8081]), kernel('10.96.0.3', 80, [8080]))
    const script = renderDiff(before, after).join('\n')
    const chain = chainName('10.96.0.2/tcp/80')
    assert.match(script, /delete element ip edgemesh kernel \{ 10\.96\.0\.2 \. tcp \. 80 \}/)
    assert.match(script, new RegExp(`add element ip edgemesh kernel \\{ 10\\.96\\.0\\.2 \\. tcp \\. 80 : goto ${chain} \\}`))
    assert.match(script, /numgen inc mod 2 map \{ 0 : 10\.0\.0\.1 \. 8080, 1 : 10\.0\.0\.1 \. 8081 \}/)
    // The chain is kept and refilled, never deleted while it is reused.
    assert.doesNotMatch(script, new RegExp(`delete chain ip edgemesh ${chain}$`, 'm'))
    assert.doesNotMatch(script, /10\.96\.0\.(1|3)/)
  })

  test('moving a service from kernel to userspace removes its chain and affinity sets', () => {
    const before = byKey(kernel('10.96.0.2', 80, [8080, 8081], 600))
    const after = byKey(userspace('10.96.0.2', 80, 4001))
    const chain = chainName('10.96.0.2/tcp/80')
    const lines = renderDiff(before, after)
    assert.deepEqual(lines.filter(l => l.startsWith('delete')), [
      'delete element ip edgemesh kernel { 10.96.0.2 . tcp . 80 }',
      `delete chain ip edgemesh ${chain}-e0`, `delete chain ip edgemesh ${chain}-e1`,
      `delete set ip edgemesh ${chain}-a0`, `delete set ip edgemesh ${chain}-a1`,
      `delete chain ip edgemesh ${chain}`
    ])
    assert.equal(lines.at(-1), 'add element ip edgemesh userspace { 10.96.0.2 . tcp . 80 : 169.254.96.16 . 4001 }')
  })

  test('replace keeps an existing table skeleton and deletes chains of services that are gone', () => {
    const stale = chainName('10.96.9.9/tcp/80')
    const lines = renderReplace(byKey(userspace('10.96.0.1', 80, 4000)), { chains: ['services', 'prerouting', 'output', 'postrouting', stale], sets: ['sync'] })
    assert.ok(!lines.some(l => l.includes('hook')), 'base chains are not touched')
    assert.ok(lines.includes(`delete chain ip edgemesh ${stale}`))
    assert.ok(lines.includes('flush map ip edgemesh userspace'))
    const fresh = renderReplace(new Map(), { chains: [], sets: [] })
    assert.ok(fresh.some(l => l.includes('type nat hook output priority -110')))
  })

  test('the listing of a previous run gives back listener ports by rule key', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { chain: { family: 'ip', table: 'edgemesh', name: 'services' } },
        { map: { name: 'userspace', elem: [[{ concat: ['10.96.0.1', 'tcp', 80] }, { concat: ['169.254.96.16', 40000] }]] } }
      ]
    })
    const state = parseTable(json)
    assert.deepEqual(state.chains, ['services'])
    assert.deepEqual([...state.listeners], [['10.96.0.1/tcp/80', 40000]])
  })
})

describe('HTTP request head parsing', () => {
  test('headers are case-insensitive, the first wins, cookies are split', () => {
    const head = parseRequestHead('GET / HTTP/1.1\r\nX-User: alice\r\nx-user: bob\r\nCookie: a=1; session=xyz\r\nCookie: b=2')
    assert.equal(head.header('x-USER'), 'alice')
    assert.equal(head.cookie('session'), 'xyz')
    assert.equal(head.cookie('b'), '2')
    assert.equal(head.header('missing'), undefined)
  })
})
