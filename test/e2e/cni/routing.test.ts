// The edge CNI's routing plane in the seed lab with a real kube-apiserver: a
// cloud node, two nodes on edge site A (cone NAT) and one on edge site B
// (symmetric NAT). Each agent claims a pod block through the API (Leases),
// `edgemesh cni` gives each node a pod from its block, and the agents carry
// pod packets between nodes over edge_tun0 and the data path: every pod
// reaches every other by ping, TCP and UDP with its own source address, two
// nodes on one LAN talk directly and the other pairs through a relay.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Lab, seed, workload } from '../../lab/index.ts'
import type { RunResult } from '../../lab/index.ts'
import { run } from '../../lab/netns.ts'
import { rootOnly, waitFor } from '../lab/helpers.ts'
import { startControlPlane, haveControlPlaneTools } from '../../helpers/control-plane.ts'
import type { ControlPlane } from '../../helpers/control-plane.ts'
import { bridgeApiIntoNetns } from '../../helpers/api-bridge.ts'
import type { ApiBridge } from '../../helpers/api-bridge.ts'
import type { StatusDocument } from '../../../src/observability/status.ts'

const entry = fileURLToPath(new URL('../../../src/bin/edgemesh.ts', import.meta.url))
const PSK = 'edgemesh-ts-test-psk-not-for-any-real-cluster'
const NODES = ['k8s-master', 'edge-a1', 'edge-a2', 'edge-b1'] as const
type NodeName = typeof NODES[number]
const EDGE = new Set<NodeName>(['edge-a1', 'edge-a2', 'edge-b1'])
const skip = process.getuid?.() !== 0 ? 'needs root' : haveControlPlaneTools() ? false : 'control plane not built (npm run tools)'

describe('edge CNI routing plane in the seed lab', { ...rootOnly, skip }, () => {
  let lab: Lab
  let cp: ControlPlane
  let bridge: ApiBridge | undefined
  let dir: string
  const pods = new Map<NodeName, { netns: string, ip: string }>()
  const servers: ChildProcess[] = []

  async function status (node: NodeName): Promise<StatusDocument | undefined> {
    const r = await lab.exec(node, ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:10551/status'])
    return r.code === 0 && r.stdout !== '' ? JSON.parse(r.stdout) as StatusDocument : undefined
  }

  /** Runs `argv` in a pod's namespace. */
  async function inPod (node: NodeName, argv: string[]): Promise<RunResult> {
    return await run(['ip', 'netns', 'exec', pods.get(node)?.netns as string, ...argv], { timeoutMs: 30_000 })
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-cni-routing-'))
    await writeFile(join(dir, 'psk'), PSK)
    cp = await startControlPlane()
    await cp.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kubeedge' } })
    for (const node of NODES) {
      await cp.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: EDGE.has(node) ? { 'node-role.kubernetes.io/edge': '' } : {} } })
    }
    lab = await Lab.up(seed, { id: Lab.newId() })
    bridge = await bridgeApiIntoNetns(Number(new URL(cp.server).port), NODES.map(n => lab.netns(n)), dir)
    for (const node of NODES) {
      const state = join(dir, node)
      await mkdir(state)
      await writeFile(join(state, 'agent.yaml'), [
        `kubeAPIConfig: {kubeConfig: ${cp.kubeconfigPath}}`,
        `commonConfig: {stateDir: ${state}}`,
        'modules:',
        '  edgeDNS: {enable: false}',
        '  edgeProxy: {enable: false}',
        '  edgeTunnel:',
        '    enable: true',
        `    psk: {path: ${join(dir, 'psk')}}`,
        '    relayNodes:',
        '    - {nodeName: k8s-master, advertiseAddress: [203.0.113.10]}',
        '  edgeCNI:',
        '    enable: true',
        '    meshCIDRConfig: {cloudCIDR: [10.244.0.0/18], edgeCIDR: [10.244.64.0/18]}',
        ''
      ].join('\n'))
      const p = lab.spawn(node, [process.execPath, entry, 'agent', '--config-file', join(state, 'agent.yaml')], { env: { NAMESPACE: 'kubeedge' }, name: 'agent' })
      await p.waitForOutput('"msg":"running"', 30_000)
    }
    // Every node claims a block and routes the other three to edge_tun0.
    for (const node of NODES) {
      await waitFor(`${node} routes the other nodes' blocks`, async () => (await status(node))?.cni?.routes?.length === NODES.length - 1, 30_000)
    }
    // A pod per node, given an address from the node's block by the plugin, as a runtime would call it.
    for (const node of NODES) {
      const netns = `emrt${process.pid % 100_000}-${node}`
      assert.equal((await run(['ip', 'netns', 'add', netns])).code, 0)
      pods.set(node, { netns, ip: '' })
      const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'edgemesh', type: 'edgemesh-cni', subnetFile: join(dir, node, 'cni-block.json'), bridge: 'emcni0', dataDir: join(dir, node, 'leases') })
      const r = await lab.exec(node, [process.execPath, entry, 'cni'], {
        input: conf,
        env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: `pod-${node}`, CNI_NETNS: `/var/run/netns/${netns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' }
      })
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`)
      const ip = (JSON.parse(r.stdout) as { ips: Array<{ address: string }> }).ips[0]?.address.split('/')[0] as string
      pods.set(node, { netns, ip })
      // Echo servers answering with the address the request came from.
      for (const mode of ['tcp', 'udp']) {
        const s = spawn('ip', ['netns', 'exec', netns, ...workload('echo', mode, '--port', '7', '--reflect')], { stdio: 'ignore' })
        servers.push(s)
      }
    }
  })

  after(async () => {
    for (const s of servers) s.kill()
    await lab?.down()
    await bridge?.stop()
    for (const { netns } of pods.values()) await run(['ip', 'netns', 'del', netns])
    await cp?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('each node holds its own block, edge nodes from edgeCIDR and the cloud node from cloudCIDR', async () => {
    const blocks = new Set<string>()
    for (const node of NODES) {
      const cni = (await status(node))?.cni
      assert.ok(cni?.block !== undefined, `${node}: ${JSON.stringify(cni)}`)
      assert.equal(cni.side, EDGE.has(node) ? 'edge' : 'cloud')
      assert.match(cni.block, EDGE.has(node) ? /^10\.244\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.0\/24$/ : /^10\.244\.([0-9]|[1-5]\d|6[0-3])\.0\/24$/)
      blocks.add(cni.block)
      assert.ok(pods.get(node)?.ip.startsWith(cni.block.split('.').slice(0, 3).join('.') + '.'), `${node}'s pod ${pods.get(node)?.ip} is in ${cni.block}`)
    }
    assert.equal(blocks.size, NODES.length)
  })

  test('every pod pings every other pod', async () => {
    for (const from of NODES) {
      for (const to of NODES) {
        if (from === to) continue
        const r = await inPod(from, ['ping', '-c', '2', '-W', '3', pods.get(to)?.ip as string])
        assert.equal(r.code, 0, `ping ${from} → ${to}: ${r.stdout}${r.stderr}\n${await lab.logs(from)}`)
      }
    }
  })

  test('TCP and UDP between every pair of pods keep the source pod address', async () => {
    for (const from of NODES) {
      const targets = NODES.filter(n => n !== from).map(n => `${pods.get(n)?.ip as string}:7`)
      for (const mode of ['tcp', 'udp']) {
        const r = await inPod(from, workload('probe', mode, ...targets, '--timeout', '5000'))
        assert.equal(r.code, 0, r.stderr)
        const results = JSON.parse(r.stdout) as Array<{ target: string, ok: boolean, reply?: string, error?: string }>
        for (const res of results) {
          assert.ok(res.ok, `${mode} ${from} → ${res.target}: ${res.error ?? ''}`)
          assert.equal(res.reply?.split(':')[0], pods.get(from)?.ip, `${mode} ${from} → ${res.target} arrived from ${res.reply ?? '?'}`)
        }
      }
    }
  })

  test('two nodes on one LAN exchange pod packets directly; across sites through the relay', async () => {
    const a1 = await status('edge-a1')
    const path = (st: StatusDocument | undefined, node: string): string | undefined => st?.tunnel?.peers.find(p => p.nodeName === node)?.dataPath
    assert.equal(path(a1, 'edge-a2'), 'direct', JSON.stringify(a1?.tunnel?.peers))
    assert.equal(path(a1, 'edge-b1'), 'relay', JSON.stringify(a1?.tunnel?.peers))
    const traffic = a1?.cni?.peers?.find(p => p.nodeName === 'edge-b1')
    assert.ok(traffic !== undefined && traffic.packetsOut > 0 && traffic.packetsIn > 0, JSON.stringify(a1?.cni))
  })
})
