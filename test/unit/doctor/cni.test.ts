// The doctor's edge CNI checks, fed what `ip -j` and `sysctl` print: a missing
// or down device fails naming it, no routed block is a warning, forwarding
// off fails, and the block must be this node's.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../../../src/config/load.ts'
import { runDoctor } from '../../../src/doctor/doctor.ts'
import type { CheckResult, DoctorInput } from '../../../src/doctor/doctor.ts'

interface Host { link?: string, routes?: string, forward?: string }

async function cniResults (host: Host, block?: object): Promise<CheckResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-doctor-cni-'))
  try {
    if (block !== undefined) await writeFile(join(dir, 'cni-block.json'), JSON.stringify(block))
    const config = parseConfig('agent', JSON.stringify({
      kubeAPIConfig: { standaloneFile: '/nonexistent/services.yaml' },
      commonConfig: { stateDir: dir },
      modules: { edgeDNS: { enable: false }, edgeProxy: { enable: false }, edgeTunnel: { enable: false }, edgeCNI: { enable: true, meshCIDRConfig: { edgeCIDR: ['10.244.64.0/18'] } } }
    }), { env: {}, checkFiles: false }).config
    const run: DoctorInput['run'] = async argv => {
      const cmd = argv.join(' ')
      if (cmd === 'ip -j link show edge_tun0') return host.link === undefined ? { code: 1, stdout: '', stderr: 'Device "edge_tun0" does not exist.' } : { code: 0, stdout: host.link, stderr: '' }
      if (cmd === 'ip -j route show dev edge_tun0') return { code: 0, stdout: host.routes ?? '[]', stderr: '' }
      if (cmd === 'sysctl -n net.ipv4.ip_forward') return { code: 0, stdout: `${host.forward ?? '1'}\n`, stderr: '' }
      return { code: 1, stdout: '', stderr: `unexpected ${cmd}` }
    }
    return (await runDoctor({ config, edgecorePath: '/nonexistent/edgecore.yaml', nodeName: 'edge-1', env: {}, run })).filter(r => r.id.startsWith('cni'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const UP = JSON.stringify([{ ifname: 'edge_tun0', flags: ['POINTOPOINT', 'MULTICAST', 'NOARP', 'UP', 'LOWER_UP'] }])
const ROUTES = JSON.stringify([{ dst: '10.244.0.0/24', dev: 'edge_tun0' }, { dst: '10.244.65.0/24', dev: 'edge_tun0' }])
const MINE = { node: 'edge-1', block: '10.244.64.0/24' }
const status = (results: CheckResult[]): Record<string, string> => Object.fromEntries(results.map(r => [r.id, r.status]))

test('a node with its block, the device up, two blocks routed and forwarding on passes', async () => {
  const r = await cniResults({ link: UP, routes: ROUTES }, MINE)
  assert.deepEqual(status(r), { 'cni.block': 'pass', 'cni.device': 'pass', 'cni.routes': 'pass', 'cni.forwarding': 'pass' })
  assert.match(r.find(c => c.id === 'cni.routes')?.detail ?? '', /^2 blocks$/)
})

test('no device, or a device that is down, fails naming edge_tun0', async () => {
  for (const link of [undefined, JSON.stringify([{ ifname: 'edge_tun0', flags: ['POINTOPOINT', 'NOARP'] }])]) {
    const r = await cniResults({ link }, MINE)
    const device = r.find(c => c.id === 'cni.device')
    assert.equal(device?.status, 'fail')
    assert.match(device?.detail ?? '', /edge_tun0/)
  }
})

test('nothing routed is a warning; forwarding off fails; a block of another node is no block', async () => {
  assert.equal((await cniResults({ link: UP })).find(c => c.id === 'cni.routes')?.status, 'warn')
  assert.equal((await cniResults({ link: UP, routes: ROUTES, forward: '0' }, MINE)).find(c => c.id === 'cni.forwarding')?.status, 'fail')
  assert.equal((await cniResults({ link: UP, routes: ROUTES }, { node: 'edge-2', block: '10.244.64.0/24' })).find(c => c.id === 'cni.block')?.status, 'fail')
})
