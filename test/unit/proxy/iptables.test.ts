import { test } from 'node:test'
import assert from 'node:assert/strict'
import { detectBackend, nftUnavailable, parseIptables, renderIptables } from '../../../src/proxy/iptables.ts'
import { InterceptionError } from '../../../src/proxy/errors.ts'
import type { PortRule } from '../../../src/proxy/rules.ts'

const rules = new Map<string, PortRule>([
  ['10.96.0.10/tcp/80', { ip: '10.96.0.10', protocol: 'tcp', port: 80, comment: 'default/web:http "x"', target: { kind: 'userspace', listener: { ip: '169.254.96.16', port: 40001 } } }],
  ['10.96.0.20/udp/53', { ip: '10.96.0.20', protocol: 'udp', port: 53, comment: 'default/dns:dns', target: { kind: 'userspace', listener: { ip: '169.254.96.16', port: 40002 } } }],
  ['10.96.0.30/tcp/9', { ip: '10.96.0.30', protocol: 'tcp', port: 9, comment: 'default/k:k', target: { kind: 'kernel', endpoints: [{ ip: '10.0.0.1', port: 9 }], pick: 'random', affinitySeconds: 0 } }]
])

test('the restore script rewrites only our chain, one DNAT per userspace port; comments cannot break quoting', () => {
  const script = renderIptables(rules)
  assert.equal(script, [
    '*nat',
    ':EDGEMESH-SERVICES - [0:0]',
    '-A EDGEMESH-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http x" -j DNAT --to-destination 169.254.96.16:40001',
    '-A EDGEMESH-SERVICES -d 10.96.0.20/32 -p udp -m udp --dport 53 -m comment --comment "default/dns:dns" -j DNAT --to-destination 169.254.96.16:40002',
    'COMMIT',
    ''
  ].join('\n'))
})

test('listener ports are read back from iptables-save, as a restarted agent needs them', () => {
  // iptables-save prints the rule with its own option order.
  const saved = [
    '*nat',
    ':EDGEMESH-SERVICES - [0:0]',
    '-A PREROUTING -m comment --comment "edgemesh service portals" -j EDGEMESH-SERVICES',
    '-A EDGEMESH-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http" -j DNAT --to-destination 169.254.96.16:40001',
    '-A EDGEMESH-SERVICES -d 10.96.0.20/32 -p udp -m udp --dport 53 -m comment --comment "default/dns:dns" -j DNAT --to-destination 169.254.96.16:40002',
    '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.9:80',
    'COMMIT'
  ].join('\n')
  assert.deepEqual([...parseIptables(saved)], [['10.96.0.10/tcp/80', 40001], ['10.96.0.20/udp/53', 40002]])
})

test('the backend already holding rules is chosen (as kube-proxy does), nft on a tie, plain iptables when neither exists', async () => {
  const save = (counts: Record<string, number | undefined>) => async (argv: readonly string[]): Promise<string> => {
    const n = counts[argv[0] as string]
    if (n === undefined) throw new Error('not found')
    return Array.from({ length: n }, (_, i) => `-A KUBE-SERVICES -j X${i}`).join('\n')
  }
  assert.equal((await detectBackend(save({ 'iptables-nft-save': 2, 'iptables-legacy-save': 40 }))).name, 'legacy')
  assert.equal((await detectBackend(save({ 'iptables-nft-save': 3, 'iptables-legacy-save': 3 }))).name, 'nft')
  assert.equal((await detectBackend(save({ 'iptables-legacy-save': 0 }))).name, 'legacy')
  assert.equal((await detectBackend(save({}))).name, 'default')
})

test('only a missing nft or a kernel without nf_tables falls back; missing privileges do not', () => {
  assert.ok(nftUnavailable(new InterceptionError('nft not found (install nftables)', '')))
  assert.ok(nftUnavailable(new InterceptionError('nft list tables exited with 1', 'Error: Could not process rule: Protocol not supported')))
  assert.ok(!nftUnavailable(new InterceptionError('nft list tables exited with 1', 'Error: Operation not permitted')))
})
