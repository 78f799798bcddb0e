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
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { workload } from '../../lab/index.ts'
import { rootOnly } from '../lab/helpers.ts'
import { haveControlPlaneTools } from '../../helpers/control-plane.ts'
import { CNI_NODES as NODES, EDGE_NODES as EDGE, startCniLab } from '../../helpers/cni-lab.ts'
import type { CniLab } from '../../helpers/cni-lab.ts'
import type { StatusDocument } from '../../../src/observability/status.ts'

const entry = fileURLToPath(new URL('../../../src/bin/edgemesh.ts', import.meta.url))
const skip = process.getuid?.() !== 0 ? 'needs root' : haveControlPlaneTools() ? false : 'control plane not built (npm run tools)'

describe('edge CNI routing plane in the seed lab', { ...rootOnly, skip }, () => {
  let cni: CniLab
  const servers: ChildProcess[] = []

  before(async () => {
    cni = await startCniLab({ edgemesh: [process.execPath, entry] })
    // Echo servers in every pod, answering with the address the request came from.
    for (const { netns } of cni.pods.values()) {
      for (const mode of ['tcp', 'udp']) servers.push(spawn('ip', ['netns', 'exec', netns, ...workload('echo', mode, '--port', '7', '--reflect')], { stdio: 'ignore' }))
    }
  })

  after(async () => {
    for (const s of servers) s.kill()
    await cni?.stop()
  })

  test('each node holds its own block, edge nodes from edgeCIDR and the cloud node from cloudCIDR', async () => {
    const blocks = new Set<string>()
    for (const node of NODES) {
      const block = (await cni.status(node))?.cni
      assert.ok(block?.block !== undefined, `${node}: ${JSON.stringify(block)}`)
      assert.equal(block.side, EDGE.has(node) ? 'edge' : 'cloud')
      assert.match(block.block, EDGE.has(node) ? /^10\.244\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.0\/24$/ : /^10\.244\.([0-9]|[1-5]\d|6[0-3])\.0\/24$/)
      blocks.add(block.block)
      assert.ok(cni.pods.get(node)?.ip.startsWith(block.block.split('.').slice(0, 3).join('.') + '.'), `${node}'s pod ${cni.pods.get(node)?.ip} is in ${block.block}`)
    }
    assert.equal(blocks.size, NODES.length)
  })

  test('every pod pings every other pod', async () => {
    for (const from of NODES) {
      for (const to of NODES) {
        if (from === to) continue
        const r = await cni.inPod(from, ['ping', '-c', '2', '-W', '3', cni.pods.get(to)?.ip as string])
        assert.equal(r.code, 0, `ping ${from} → ${to}: ${r.stdout}${r.stderr}\n${await cni.lab.logs(from)}`)
      }
    }
  })

  test('TCP and UDP between every pair of pods keep the source pod address', async () => {
    for (const from of NODES) {
      const targets = NODES.filter(n => n !== from).map(n => `${cni.pods.get(n)?.ip as string}:7`)
      for (const mode of ['tcp', 'udp']) {
        const r = await cni.inPod(from, workload('probe', mode, ...targets, '--timeout', '5000'))
        assert.equal(r.code, 0, r.stderr)
        const results = JSON.parse(r.stdout) as Array<{ target: string, ok: boolean, reply?: string, error?: string }>
        for (const res of results) {
          assert.ok(res.ok, `${mode} ${from} → ${res.target}: ${res.error ?? ''}`)
          assert.equal(res.reply?.split(':')[0], cni.pods.get(from)?.ip, `${mode} ${from} → ${res.target} arrived from ${res.reply ?? '?'}`)
        }
      }
    }
  })

  test('two nodes on one LAN exchange pod packets directly; across sites through the relay', async () => {
    const a1 = await cni.status('edge-a1')
    const path = (st: StatusDocument | undefined, node: string): string | undefined => st?.tunnel?.peers.find(p => p.nodeName === node)?.dataPath
    assert.equal(path(a1, 'edge-a2'), 'direct', JSON.stringify(a1?.tunnel?.peers))
    assert.equal(path(a1, 'edge-b1'), 'relay', JSON.stringify(a1?.tunnel?.peers))
    const traffic = a1?.cni?.peers?.find(p => p.nodeName === 'edge-b1')
    assert.ok(traffic !== undefined && traffic.packetsOut > 0 && traffic.packetsIn > 0, JSON.stringify(a1?.cni))
  })

  test('edgemesh doctor on a node: its block, edge_tun0 up, the other three blocks routed, forwarding on', async () => {
    const r = await cni.lab.exec('edge-a1', [process.execPath, entry, 'doctor', '--json', '--config-file', join(cni.dir, 'edge-a1', 'agent.yaml')], { env: { NODE_NAME: 'edge-a1' } })
    const checks = JSON.parse(r.stdout) as Array<{ id: string, status: string, detail: string }>
    const byId = Object.fromEntries(checks.filter(c => c.id.startsWith('cni')).map(c => [c.id, c]))
    assert.deepEqual(Object.fromEntries(Object.entries(byId).map(([id, c]) => [id, c.status])), { 'cni.block': 'pass', 'cni.device': 'pass', 'cni.routes': 'pass', 'cni.forwarding': 'pass' }, r.stdout + r.stderr)
    assert.equal(byId['cni.routes']?.detail, '3 blocks')
  })
})
