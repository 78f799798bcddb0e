// `edgemesh cni install`, as the DaemonSet's init container runs it, from the
// production bundle: Node, the app and the plugin land in the host's
// directories, the installed plugin then serves a pod through cnitool, a
// second run changes nothing, and a node whose CNI directory holds another
// CNI's configuration gets the plugin but keeps that configuration.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cnitool, cnitoolSkip, run } from '../../helpers/cnitool.ts'
import { bundleForBench } from '../../../bench/bundle.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const skip = cnitoolSkip
const ID = `${process.pid % 100_000}`
const NS = `emcnii-${ID}`
const BRIDGE = `emi${ID}`

describe('edgemesh cni install', { skip }, () => {
  let dir: string
  let bundle: string
  const install = async (confDir: string): Promise<{ code: number, stdout: string, stderr: string }> => await run(process.execPath, [bundle, 'cni', 'install',
    '--install-dir', join(dir, 'opt/edgemesh'), '--bin-dir', join(dir, 'opt/cni/bin'), '--conf-dir', confDir,
    '--subnet-file', join(dir, 'cni-block.json'), '--bridge', BRIDGE, '--data-dir', join(dir, 'leases')], { PATH: process.env.PATH })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-cni-install-'))
    bundle = await bundleForBench(join(root, 'src/bin/edgemesh.ts'))
    // The agent's block file, as it writes it after claiming the block.
    await writeFile(join(dir, 'cni-block.json'), JSON.stringify({ node: 'edge-1', block: '198.18.92.0/27' }))
  })

  after(async () => {
    await run('ip', ['netns', 'del', NS])
    await run('ip', ['link', 'del', BRIDGE])
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('installs Node, the app, the plugin and a conflist; the installed plugin serves a pod; a second run changes nothing', async () => {
    const confDir = join(dir, 'etc/cni/net.d')
    const first = await install(confDir)
    assert.equal(first.code, 0, first.stdout + first.stderr)
    const node = join(dir, 'opt/edgemesh/bin/node')
    assert.match(first.stdout, new RegExp(`^wrote ${node}$`, 'm'))
    assert.match(first.stdout, new RegExp(`^wrote ${join(dir, 'opt/cni/bin/edgemesh-cni')}$`, 'm'))
    assert.match(first.stdout, /10-edgemesh\.conflist: written/)
    assert.equal(statSync(node).size, statSync(process.execPath).size)
    assert.equal(statSync(join(dir, 'opt/cni/bin/edgemesh-cni')).mode & 0o777, 0o755)
    const conflist = JSON.parse(await readFile(join(confDir, '10-edgemesh.conflist'), 'utf8')) as { name: string, plugins: Array<Record<string, unknown>> }
    assert.deepEqual(conflist.plugins[0], { type: 'edgemesh-cni', subnetFile: join(dir, 'cni-block.json'), bridge: BRIDGE, dataDir: join(dir, 'leases') })

    assert.equal((await run('ip', ['netns', 'add', NS])).code, 0)
    const env = { PATH: process.env.PATH, CNI_PATH: join(dir, 'opt/cni/bin'), NETCONFPATH: confDir, CNI_CACHE_DIR: join(dir, 'cache') }
    const added = await run(cnitool, ['add', 'edgemesh', `/var/run/netns/${NS}`], env)
    assert.equal(added.code, 0, added.stdout + added.stderr)
    const address = (JSON.parse(added.stdout) as { ips: Array<{ address: string }> }).ips[0]?.address as string
    assert.match(address, /^198\.18\.92\.\d+\/27$/)
    const ping = await run('ip', ['netns', 'exec', NS, 'ping', '-c', '1', '-W', '2', '198.18.92.1'])
    assert.equal(ping.code, 0, `the pod reaches its gateway: ${ping.stdout}${ping.stderr}`)
    const deleted = await run(cnitool, ['del', 'edgemesh', `/var/run/netns/${NS}`], env)
    assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr)
    assert.deepEqual((await readdir(join(dir, 'leases/edgemesh'))).filter(f => /^\d/.test(f)), [], 'no lease left after DEL')

    const second = await install(confDir)
    assert.equal(second.code, 0, second.stdout + second.stderr)
    assert.doesNotMatch(second.stdout, /^wrote /m)
    assert.match(second.stdout, /10-edgemesh\.conflist: unchanged/)
  })

  test('where another CNI is configured, the plugin is installed and that configuration kept', async () => {
    const confDir = join(dir, 'flannel-node/net.d')
    await mkdir(confDir, { recursive: true })
    await writeFile(join(confDir, '10-flannel.conflist'), '{"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel"}]}')
    const r = await install(confDir)
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /no 10-edgemesh\.conflist: .* holds another CNI's configuration \(10-flannel\.conflist\)/)
    assert.ok(!existsSync(join(confDir, '10-edgemesh.conflist')))
  })

  test('a relative directory is refused naming the flag', async () => {
    const r = await run(process.execPath, [bundle, 'cni', 'install', '--conf-dir', 'etc/cni'], { PATH: process.env.PATH })
    assert.equal(r.code, 2)
    assert.match(r.stderr, /--conf-dir must be an absolute path, got "etc\/cni"/)
  })
})
