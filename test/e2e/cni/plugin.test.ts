// The CNI plugin as a container runtime drives it: cnitool (built from the CNI
// project's Go module) runs ADD, CHECK and DEL through CNI_PATH and a conflist
// on real network namespaces; pods then reach each other and the gateway over
// the bridge, and nothing is left after DEL.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cnitool, cnitoolSkip, run } from '../../helpers/cnitool.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const skip = cnitoolSkip
const ID = `${process.pid % 100_000}`
const NET = `emcni-${ID}`
const BRIDGE = `emcni${ID}`
/** 198.18.0.0/15 is reserved for tests; a /27 holds 29 pods besides the gateway. */
const SUBNET = '198.18.91.0/27'

describe('edgemesh-cni through cnitool', { skip }, () => {
  let dir: string
  let env: NodeJS.ProcessEnv
  const namespaces: string[] = []

  async function netns (name: string): Promise<string> {
    const full = `${NET}-${name}`
    const r = await run('ip', ['netns', 'add', full])
    assert.equal(r.code, 0, r.stderr)
    namespaces.push(full)
    return `/var/run/netns/${full}`
  }

  async function cni (command: 'add' | 'check' | 'del', ns: string, network = NET): Promise<{ code: number, stdout: string, stderr: string }> {
    return await run(cnitool, [command, network, ns], env)
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-cni-'))
    const bin = join(dir, 'bin')
    const conf = join(dir, 'net.d')
    await mkdir(bin)
    await mkdir(conf)
    // What the DaemonSet installs into /opt/cni/bin: a launcher for `edgemesh cni`.
    await writeFile(join(bin, 'edgemesh-cni'), `#!/bin/sh\nexec ${process.execPath} ${join(root, 'src/bin/edgemesh.ts')} cni\n`)
    await chmod(join(bin, 'edgemesh-cni'), 0o755)
    await writeFile(join(conf, '10-edgemesh.conflist'), JSON.stringify({
      cniVersion: '1.0.0',
      name: NET,
      plugins: [{ type: 'edgemesh-cni', subnet: SUBNET, bridge: BRIDGE, mtu: 1400, dataDir: join(dir, 'leases') }]
    }))
    await writeFile(join(conf, '20-broken.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: `${NET}-broken`, plugins: [{ type: 'edgemesh-cni', bridge: BRIDGE }] }))
    env = { PATH: process.env.PATH, CNI_PATH: bin, NETCONFPATH: conf, CNI_CACHE_DIR: join(dir, 'cache') }
  })

  after(async () => {
    for (const ns of namespaces) await run('ip', ['netns', 'del', ns])
    await run('ip', ['link', 'del', BRIDGE])
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('ADD: each pod gets an address from the subnet on the bridge, reaches the other pod and the gateway; CHECK passes', async () => {
    const [a, b] = [await netns('a'), await netns('b')]
    const results = []
    for (const ns of [a, b]) {
      const r = await cni('add', ns)
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`)
      results.push(JSON.parse(r.stdout) as { ips: Array<{ address: string, gateway: string }>, interfaces: Array<{ name: string, sandbox?: string }>, routes: Array<{ dst: string }> })
    }
    const [ra, rb] = results as [typeof results[number], typeof results[number]]
    assert.deepEqual([ra.ips[0]?.address, rb.ips[0]?.address], ['198.18.91.2/27', '198.18.91.3/27'])
    assert.equal(ra.ips[0]?.gateway, '198.18.91.1')
    assert.deepEqual(ra.routes, [{ dst: '0.0.0.0/0', gw: '198.18.91.1' }])
    assert.equal(ra.interfaces[1]?.sandbox, a)
    const mtu = await run('ip', ['-n', `${NET}-a`, '-j', 'link', 'show', 'eth0'])
    assert.equal((JSON.parse(mtu.stdout) as Array<{ mtu: number }>)[0]?.mtu, 1400)
    // A TCP exchange from pod a to pod b, and to a server on the gateway address.
    const server = "require('node:net').createServer(s => s.end('pong')).listen(7000, process.argv[1], () => console.log('up'))"
    const client = "const s = require('node:net').connect(7000, process.argv[1]); s.on('data', d => process.stdout.write(d)); s.on('error', e => { console.error(e.message); process.exit(1) })"
    for (const [where, address] of [[['ip', 'netns', 'exec', `${NET}-b`], '198.18.91.3'], [[], '198.18.91.1']] as const) {
      const srv = execFile(where[0] ?? process.execPath, [...where.slice(1), ...(where.length > 0 ? [process.execPath] : []), '-e', server, address])
      await new Promise(resolve => srv.stdout?.once('data', resolve))
      const r = await run('ip', ['netns', 'exec', `${NET}-a`, process.execPath, '-e', client, address])
      srv.kill()
      assert.equal(r.stdout, 'pong', `pod a → ${address}: ${r.stderr}`)
    }
    const check = await cni('check', a)
    assert.equal(check.code, 0, `${check.stdout}${check.stderr}`)
  })

  test('CHECK fails, naming it, when the pod lost its address; a broken configuration is refused naming the field', async () => {
    await run('ip', ['-n', `${NET}-a`, 'addr', 'flush', 'dev', 'eth0'])
    const check = await cni('check', `/var/run/netns/${NET}-a`)
    assert.notEqual(check.code, 0)
    assert.match(check.stdout + check.stderr, /eth0 in \/var\/run\/netns\/emcni-\d+-a has no address, not 198\.18\.91\.2\/27/)
    const broken = await cni('add', `/var/run/netns/${NET}-b`, `${NET}-broken`)
    assert.notEqual(broken.code, 0)
    assert.match(broken.stdout + broken.stderr, /subnet is required/)
  })

  test('DEL removes the veth and the lease, and is idempotent, also once the namespace is gone', async () => {
    const containers = ['a', 'b'].map(n => `/var/run/netns/${NET}-${n}`)
    for (const ns of containers) {
      const r = await cni('del', ns)
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`)
    }
    const links = await run('ip', ['-j', 'link', 'show', 'master', BRIDGE])
    assert.deepEqual(JSON.parse(links.stdout === '' ? '[]' : links.stdout), [], 'no veth left on the bridge')
    assert.deepEqual(readdirSync(join(dir, 'leases', NET)).filter(f => f !== 'last_reserved_ip.0'), [], 'no lease left')
    await run('ip', ['netns', 'del', `${NET}-a`])
    const again = await cni('del', containers[0] as string)
    assert.equal(again.code, 0, `${again.stdout}${again.stderr}`)
  })

  test('12 pods added at once get 12 different addresses; DEL of each leaves nothing', async () => {
    const all = await Promise.all(Array.from({ length: 12 }, async (_, i) => await netns(`p${i}`)))
    const adds = await Promise.all(all.map(async ns => await cni('add', ns)))
    for (const r of adds) assert.equal(r.code, 0, `${r.stdout}${r.stderr}`)
    const addresses = adds.map(r => (JSON.parse(r.stdout) as { ips: Array<{ address: string }> }).ips[0]?.address)
    assert.equal(new Set(addresses).size, 12, addresses.join(' '))
    await Promise.all(all.map(async ns => await cni('del', ns)))
    assert.deepEqual(readdirSync(join(dir, 'leases', NET)).filter(f => f !== 'last_reserved_ip.0'), [])
    const links = await run('ip', ['-j', 'link', 'show', 'master', BRIDGE])
    assert.deepEqual(JSON.parse(links.stdout === '' ? '[]' : links.stdout), [])
  })
})
