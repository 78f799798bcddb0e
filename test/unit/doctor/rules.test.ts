// The doctor's count of interception rules, fed the `nft list map` output of
// a table built by the agent's own renderers.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { parseConfig } from '../../../src/config/load.ts'
import { runDoctor } from '../../../src/doctor/doctor.ts'
import type { DoctorInput } from '../../../src/doctor/doctor.ts'
import { renderReplace, ruleKey, TABLE } from '../../../src/proxy/rules.ts'
import type { PortRule } from '../../../src/proxy/rules.ts'

const RULES: PortRule[] = [
  { ip: '10.96.0.10', protocol: 'udp', port: 53, comment: 'kube-system/kube-dns:dns', target: { kind: 'kernel', endpoints: [{ ip: '10.244.0.5', port: 53 }], pick: 'random', affinitySeconds: 0 } },
  { ip: '10.96.0.10', protocol: 'tcp', port: 53, comment: 'kube-system/kube-dns:dns-tcp', target: { kind: 'kernel', endpoints: [{ ip: '10.244.0.5', port: 53 }, { ip: '10.244.0.6', port: 53 }], pick: 'round-robin', affinitySeconds: 0 } },
  { ip: '10.96.0.20', protocol: 'tcp', port: 80, comment: 'default/web:http', target: { kind: 'kernel', endpoints: [{ ip: '10.244.1.7', port: 8080 }], pick: 'random', affinitySeconds: 30 } },
  { ip: '10.96.0.1', protocol: 'tcp', port: 443, comment: 'default/kubernetes:https', target: { kind: 'userspace', listener: { ip: '169.254.96.16', port: 40001 } } },
  { ip: '10.96.0.30', protocol: 'udp', port: 5353, comment: 'default/mdns:mdns', target: { kind: 'userspace', listener: { ip: '169.254.96.16', port: 40002 } } }
]

const TYPES = {
  kernel: 'ipv4_addr . inet_proto . inet_service : verdict',
  userspace: 'ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service'
}

/** `nft list map ip edgemesh NAME` as nft 1.0 prints it, elements taken from the agent's transaction. */
function listMap (name: 'kernel' | 'userspace', rules: readonly PortRule[]): string {
  const script = renderReplace(new Map(rules.map(r => [ruleKey(r), r])), { chains: [], sets: [] })
  const elements = script.flatMap(l => {
    const m = new RegExp(`^add element ip ${TABLE} ${name} \\{ (.*) \\}$`).exec(l)
    return m === null ? [] : [m[1] as string]
  })
  return [
    `table ip ${TABLE} {`,
    `\tmap ${name} {`,
    `\t\ttype ${TYPES[name]}`,
    ...(elements.length === 0 ? [] : [`\t\telements = { ${elements.join(',\n\t\t\t     ')} }`]),
    '\t}',
    '}',
    ''
  ].join('\n')
}

function config (): DoctorInput['config'] {
  return parseConfig('agent', JSON.stringify({
    kubeAPIConfig: { standaloneFile: '/nonexistent/services.yaml' },
    modules: { edgeDNS: { enable: false }, edgeProxy: { enable: true, interception: 'nftables' }, edgeTunnel: { enable: false } }
  }), { env: {}, checkFiles: false }).config
}

async function rulesDetail (maps: { kernel: string, userspace: string }): Promise<string> {
  const run: DoctorInput['run'] = async (argv) => {
    const cmd = argv.join(' ')
    if (cmd === 'iptables-save -t nat') return { code: 0, stdout: '', stderr: '' }
    if (cmd === `nft list map ip ${TABLE} kernel`) return { code: 0, stdout: maps.kernel, stderr: '' }
    if (cmd === `nft list map ip ${TABLE} userspace`) return { code: 0, stdout: maps.userspace, stderr: '' }
    if (cmd === 'nft list tables') return { code: 0, stdout: `table ip ${TABLE}\n`, stderr: '' }
    return { code: 1, stdout: '', stderr: `${argv[0] as string}: not here` }
  }
  const results = await runDoctor({ config: config(), edgecorePath: '/nonexistent/edgecore.yaml', nodeName: 'n1', env: {}, run })
  const rules = results.find(r => r.id === 'rules')
  assert.equal(rules?.status, 'pass', JSON.stringify(rules))
  return rules.detail
}

const kernelCount = RULES.filter(r => r.target.kind === 'kernel').length
const userspaceCount = RULES.length - kernelCount

describe('doctor: interception rule count', () => {
  test('counts one per service port, not the map type line', async () => {
    assert.equal(
      await rulesDetail({ kernel: listMap('kernel', RULES), userspace: listMap('userspace', RULES) }),
      `table ip ${TABLE}: ${kernelCount} kernel-path and ${userspaceCount} userspace service ports`
    )
  })

  test('empty maps count zero', async () => {
    assert.equal(await rulesDetail({ kernel: listMap('kernel', []), userspace: listMap('userspace', []) }), `table ip ${TABLE}: 0 kernel-path and 0 userspace service ports`)
  })

  // The same, with what a real nft prints, in a network namespace of its own.
  const canNft = process.getuid?.() === 0 && spawnSync('unshare', ['-n', 'nft', 'list', 'tables']).status === 0
  test('real nft output', { skip: canNft ? false : 'needs root, unshare and nft' }, async () => {
    const script = renderReplace(new Map(RULES.map(r => [ruleKey(r), r])), { chains: [], sets: [] }).join('\n') + '\n'
    const list = (name: string): string => {
      const r = spawnSync('unshare', ['-n', 'sh', '-c', `nft -f - && nft list map ip ${TABLE} ${name}`], { input: script, encoding: 'utf8' })
      assert.equal(r.status, 0, r.stderr)
      return r.stdout
    }
    assert.equal(
      await rulesDetail({ kernel: list('kernel'), userspace: list('userspace') }),
      `table ip ${TABLE}: ${kernelCount} kernel-path and ${userspaceCount} userspace service ports`
    )
  })
})
