// edgemesh doctor in the seed lab: a healthy edge node passes every check;
// each prerequisite broken in turn is named with its fix.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Lab, seed } from '../../lab/index.ts'
import { rootOnly } from '../lab/helpers.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const entry = join(root, 'src/bin/edgemesh.ts')
const NODE = 'edge-a1'
const PSK = 'edgemesh-ts-test-psk-not-for-any-real-cluster'

function edgecore (metaServer: boolean, clusterDNS: string): string {
  return `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
modules:
  edged:
    tailoredKubeletConfig:
      clusterDNS: ["${clusterDNS}"]
      clusterDomain: cluster.local
  metaManager:
    metaServer:
      enable: ${String(metaServer)}
      server: 127.0.0.1:10550
`
}

describe('edgemesh doctor in the seed lab', rootOnly, () => {
  let lab: Lab
  let dir: string
  const files: Record<string, string> = {}

  function agentConfig (pskFile: string, proxy: boolean): string {
    return [
      'kubeAPIConfig:', `  standaloneFile: ${join(dir, 'services.yaml')}`,
      'commonConfig:', `  stateDir: ${dir}`,
      'modules:',
      `  edgeDNS: {enable: ${String(proxy)}}`,
      `  edgeProxy: {enable: ${String(proxy)}}`,
      '  edgeTunnel:',
      '    enable: true',
      `    psk: {path: ${pskFile}}`,
      '    relayNodes: [{nodeName: k8s-master, advertiseAddress: [203.0.113.10]}]',
      ''
    ].join('\n')
  }

  async function doctor (config: string, edgecoreFile: string): Promise<{ code: number, out: string }> {
    const r = await lab.exec(NODE, [process.execPath, entry, 'doctor', '--config-file', config, '--edgecore', edgecoreFile], { timeoutMs: 60_000 })
    return { code: r.code ?? -1, out: r.stdout + r.stderr }
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-doctor-e2e-'))
    const put = async (name: string, text: string): Promise<void> => { files[name] = join(dir, name); await writeFile(files[name], text) }
    await put('services.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: kubernetes, namespace: default}\nspec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443}]}\n')
    await put('psk', PSK)
    await put('other-psk', 'a key from another cluster, long enough')
    await put('relay.yaml', agentConfig(join(dir, 'psk'), false))
    await put('agent.yaml', agentConfig(join(dir, 'psk'), true))
    await put('agent-other-psk.yaml', agentConfig(join(dir, 'other-psk'), true))
    await put('edgecore-ok.yaml', edgecore(true, '169.254.96.16'))
    await put('edgecore-no-meta.yaml', edgecore(false, '169.254.96.16'))
    await put('edgecore-bad-dns.yaml', edgecore(true, '10.96.0.10'))
    lab = await Lab.up(seed, { id: Lab.newId() })
    const relay = lab.spawn('k8s-master', [process.execPath, entry, 'agent', '--config-file', files['relay.yaml'] as string], { env: { NAMESPACE: 'kubeedge' } })
    await relay.waitForOutput('"msg":"running"', 20_000)
    const agent = lab.spawn(NODE, [process.execPath, entry, 'agent', '--config-file', files['agent.yaml'] as string], { env: { NAMESPACE: 'kubeedge' } })
    await agent.waitForOutput('"msg":"running"', 20_000)
  })

  after(async () => {
    await lab?.down()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('a healthy node passes every check', async () => {
    const r = await doctor(files['agent.yaml'] as string, files['edgecore-ok.yaml'] as string)
    assert.equal(r.code, 0, r.out)
    for (const line of ['✔ edgecore metaServer enabled', '✔ edgecore clusterDNS is 169.254.96.16', '✔ interface edgemesh0 carries 169.254.96.16',
      '✔ DNS answers on 169.254.96.16:53', '✔ relay k8s-master reachable on TCP 20006', '✔ PSK agrees with the relays: handshake ok with k8s-master',
      '✔ interception rules installed', '✔ kube-proxy coexistence']) {
      assert.ok(r.out.includes(line), `${line}\n${r.out}`)
    }
    assert.match(r.out, /all checks passed\n$/)
  })

  test('metaServer disabled in edgecore.yaml', async () => {
    const r = await doctor(files['agent.yaml'] as string, files['edgecore-no-meta.yaml'] as string)
    assert.equal(r.code, 1)
    assert.match(r.out, /✖ edgecore metaServer enabled: .*\n {4}fix: set modules\.metaManager\.metaServer\.enable: true/)
    assert.match(r.out, /1 check failed/)
  })

  test('clusterDNS pointing elsewhere', async () => {
    const r = await doctor(files['agent.yaml'] as string, files['edgecore-bad-dns.yaml'] as string)
    assert.equal(r.code, 1)
    assert.match(r.out, /✖ edgecore clusterDNS is 169\.254\.96\.16: clusterDNS is \[10\.96\.0\.10\].*\n {4}fix: set modules\.edged\.tailoredKubeletConfig\.clusterDNS: \["169\.254\.96\.16"\]/)
  })

  test('a different PSK', async () => {
    const r = await doctor(files['agent-other-psk.yaml'] as string, files['edgecore-ok.yaml'] as string)
    assert.equal(r.code, 1)
    assert.match(r.out, /✖ PSK agrees with the relays: k8s-master: PSK mismatch or not an EdgeMesh peer.*\n {4}fix: every node needs the same PSK/)
    assert.match(r.out, /✔ relay k8s-master reachable/)
  })

  test('the relay port blocked', async () => {
    const block = await lab.exec('k8s-master', ['nft', 'add table ip doctorblock; add chain ip doctorblock input { type filter hook input priority 0; tcp dport 20006 drop; }'])
    assert.equal(block.code, 0, block.stderr)
    try {
      const r = await doctor(files['agent.yaml'] as string, files['edgecore-ok.yaml'] as string)
      assert.equal(r.code, 1)
      assert.match(r.out, /✖ relay k8s-master reachable on TCP 20006: 203\.0\.113\.10:20006 no answer.*\n {4}fix: open TCP 20006 to k8s-master/)
    } finally {
      await lab.exec('k8s-master', ['nft', 'delete', 'table', 'ip', 'doctorblock'])
    }
  })

  test('only the tunnel port open on the relay, as upstream needs: nothing to warn about', async () => {
    // The data path shares 20006 by default; 20008 is only used when dataPath.port names it.
    const block = await lab.exec('k8s-master', ['nft', 'add table ip doctorblock; add chain ip doctorblock input { type filter hook input priority 0; tcp dport 20008 drop; }'])
    assert.equal(block.code, 0, block.stderr)
    try {
      const r = await doctor(files['agent.yaml'] as string, files['edgecore-ok.yaml'] as string)
      assert.equal(r.code, 0, r.out)
      assert.doesNotMatch(r.out, /20008/)
      assert.match(r.out, /all checks passed\n$/)
    } finally {
      await lab.exec('k8s-master', ['nft', 'delete', 'table', 'ip', 'doctorblock'])
    }
  })

  test('the DNS interface missing', async () => {
    await lab.exec(NODE, ['ip', 'link', 'del', 'edgemesh0'])
    const r = await doctor(files['agent.yaml'] as string, files['edgecore-ok.yaml'] as string)
    assert.equal(r.code, 1)
    assert.match(r.out, /✖ interface edgemesh0 carries 169\.254\.96\.16: no interface edgemesh0.*\n {4}fix: start the agent/)
    assert.match(r.out, /✖ DNS answers on 169\.254\.96\.16:53/)
  })
})
