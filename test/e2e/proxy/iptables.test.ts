// The iptables fallback in the lab: on edge-a1 the agent runs with a PATH
// without `nft` (a node without nftables), so its default interception falls
// back to iptables. A kube-proxy-like iptables rule sends the same ClusterIP
// to a black hole; ours is jumped to first and wins for the ports we proxy.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Lab, seed, workload } from '../../lab/index.ts'
import type { LabProcess } from '../../lab/index.ts'
import { rootOnly } from '../lab/helpers.ts'
import { SERVICES } from './fixtures/services.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const entry = join(root, 'src/bin/edgemesh.ts')
const client = fileURLToPath(new URL('./fixtures/client.ts', import.meta.url))
const NODE = 'edge-a1'

describe('EdgeProxy on a node without nftables: the iptables fallback', rootOnly, () => {
  let lab: Lab
  let dir: string
  let config: string
  let path: string
  let agent: LabProcess

  async function startAgent (name: string): Promise<LabProcess> {
    const p = lab.spawn(NODE, [process.execPath, entry, 'agent', '--config-file', config], { env: { NAMESPACE: 'kubeedge', PATH: path }, name })
    try {
      await p.waitForOutput('"msg":"proxy rules installed"', 20_000)
    } catch (err) {
      throw new Error(`agent did not install proxy rules: ${(err as Error).message}\n${await p.output()}`)
    }
    return p
  }

  async function saved (): Promise<string> {
    return (await lab.exec(NODE, ['iptables-save', '-t', 'nat'])).stdout
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-iptables-e2e-'))
    await writeFile(join(dir, 'services.yaml'), SERVICES)
    config = join(dir, 'edgemesh-agent.yaml')
    await writeFile(config, [
      'kubeAPIConfig:', `  standaloneFile: ${join(dir, 'services.yaml')}`,
      'commonConfig:', `  stateDir: ${dir}`,
      'modules:',
      '  edgeDNS: {enable: true}',
      '  edgeProxy: {enable: true}',
      '  edgeTunnel: {enable: false}',
      ''
    ].join('\n'))
    // A PATH with iptables and ip but no nft.
    const bin = join(dir, 'bin')
    await mkdir(bin)
    for (const tool of ['ip', 'iptables', 'iptables-save', 'iptables-restore', 'iptables-nft', 'iptables-nft-save', 'iptables-nft-restore', 'iptables-legacy', 'iptables-legacy-save', 'iptables-legacy-restore']) {
      if (existsSync(`/usr/sbin/${tool}`)) await symlink(`/usr/sbin/${tool}`, join(bin, tool))
    }
    path = `${bin}:/usr/bin`
    lab = await Lab.up(seed, { id: Lab.newId() })
    for (const node of ['edge-a1', 'edge-a2']) await lab.spawn(node, workload('hostname', '--name', node)).waitForOutput('listening', 10_000)
    await lab.spawn('edge-a2', workload('echo', 'udp', '--port', '7007')).waitForOutput('listening', 10_000)
    // kube-proxy's place: its chain in PREROUTING and OUTPUT, sending the ClusterIP to a black hole.
    const kubeProxy = await lab.exec(NODE, ['iptables-restore', '--noflush'], {
      input: ['*nat', ':KUBE-SERVICES - [0:0]',
        '-A PREROUTING -j KUBE-SERVICES', '-A OUTPUT -j KUBE-SERVICES',
        '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 12345 -j DNAT --to-destination 192.168.1.99:9376',
        'COMMIT', ''].join('\n')
    })
    assert.equal(kubeProxy.code, 0, kubeProxy.stderr)
    agent = await startAgent('agent-1')
  })

  after(async () => {
    await lab?.down()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('nftables missing: the agent says so and intercepts with iptables, ahead of kube-proxy', async () => {
    const out = await agent.output()
    assert.match(out, /nftables is not available on this node; intercepting with iptables/)
    assert.match(out, /"backend":"(nft|legacy|default)","command":"iptables[a-z-]*","msg":"iptables interception"/)
    const rules = await saved()
    assert.match(rules, /-A EDGEMESH-SERVICES -d 10\.96\.0\.10\/32 -p tcp -m tcp --dport 12345 .*-j DNAT --to-destination 169\.254\.96\.16:\d+/)
    const prerouting = rules.split('\n').filter(l => l.startsWith('-A PREROUTING'))
    assert.match(prerouting[0] ?? '', /-j EDGEMESH-SERVICES/, 'our jump comes first')
  })

  test('curl http://hostname-svc:12345 from a pod reaches both backends; UDP keeps datagram boundaries', async () => {
    const names = new Set<string>()
    for (let i = 0; i < 6; i++) {
      const r = await lab.exec(NODE, ['curl', '-sS', '--max-time', '3', 'http://hostname-svc:12345'], { pod: 'client' })
      assert.equal(r.code, 0, r.stderr)
      names.add(r.stdout)
    }
    assert.deepEqual([...names].sort(), ['edge-a1', 'edge-a2'])
    const host = await lab.exec(NODE, ['curl', '-sS', '--max-time', '3', 'http://10.96.0.10:12345'])
    assert.equal(host.code, 0, `from the host itself (OUTPUT): ${host.stderr}`)
    const sizes = [1, 1400, 33, 8000]
    const r = await lab.exec(NODE, [process.execPath, client, 'udp', '10.96.0.20:7', ...sizes.map(String)], { pod: 'client' })
    const result = JSON.parse(r.stdout) as { sizes: number[], complete: boolean }
    assert.ok(result.complete, r.stdout)
    assert.deepEqual([...result.sizes].sort((a, b) => a - b), [...sizes].sort((a, b) => a - b))
  })

  test('a restart keeps the listener ports and the rules; cleanup removes our chain and leaves kube-proxy\'s', async () => {
    const before = (await saved()).split('\n').filter(l => l.startsWith('-A EDGEMESH-SERVICES')).sort()
    await agent.stop()
    agent = await startAgent('agent-2')
    const after = (await saved()).split('\n').filter(l => l.startsWith('-A EDGEMESH-SERVICES')).sort()
    assert.deepEqual(after, before)
    assert.equal((await saved()).split('\n').filter(l => l.includes('-j EDGEMESH-SERVICES')).length, 2, 'one jump per hook, not one more per start')
    await agent.stop()
    const r = await lab.exec(NODE, [process.execPath, entry, 'cleanup', '--config-file', config], { env: { PATH: path } })
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /nftables is not available here: no table to remove\nremoved iptables chain nat\/EDGEMESH-SERVICES\n/)
    const rules = await saved()
    assert.doesNotMatch(rules, /EDGEMESH-SERVICES/)
    assert.match(rules, /-A KUBE-SERVICES -d 10\.96\.0\.10\/32/)
  })
})
