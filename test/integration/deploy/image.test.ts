// The container images, built by `npm run image` with no container engine,
// checked the way a runtime reads them: the OCI layout (index → manifest →
// config and layers, every digest, size and diff_id), the docker-archive
// manifest.json over the same blobs, then the layers unpacked in order into a
// root filesystem that runs `edgemesh --version` (amd64 under chroot, arm64
// under qemu-user when it is installed).
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { GATEWAY_NODE_FLAGS, AGENT_NODE_FLAGS, MALLOC_ENV } from '../../../src/bin/node-flags.ts'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gunzipSync } from 'node:zlib'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version
const canBuild = process.getuid?.() === 0 && existsSync('/usr/bin/apt-get') && existsSync('/usr/bin/dpkg-deb')
const skip = canBuild ? {} : { skip: 'needs root and Debian apt (apt-get download, dpkg-deb, chroot)' }
const qemu = ['/usr/bin/qemu-aarch64-static', '/usr/bin/qemu-aarch64'].find(existsSync)

interface Run { code: number, stdout: string, stderr: string }
function run (cmd: string, args: string[]): Promise<Run> {
  return new Promise(resolve => {
    execFile(cmd, args, { maxBuffer: 64 << 20, timeout: 600_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`

/** ELF e_machine: 62 is x86-64, 183 is AArch64. */
function elfMachine (file: string): number {
  const fd = openSync(file, 'r')
  try {
    const head = Buffer.alloc(20)
    readSync(fd, head, 0, 20, 0)
    assert.equal(head.subarray(0, 4).toString('latin1'), '\x7fELF', `${file} is not an ELF file`)
    return head.readUInt16LE(18)
  } finally {
    closeSync(fd)
  }
}

describe('container images (npm run image)', skip, () => {
  let dir: string
  const rootfs: Record<string, string> = {}

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgemesh-image-test-'))
    const built = await run(process.execPath, [join(root, 'scripts/image.ts'), '--arch', 'amd64,arm64', '--out', dir])
    assert.equal(built.code, 0, built.stdout + built.stderr)
  })

  after(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  for (const arch of ['amd64', 'arm64']) {
    test(`${arch}: OCI layout and docker-archive agree, every digest, size and diff_id checks out`, async () => {
      const tarball = join(dir, `edgemesh-agent-${version}-${arch}.tar`)
      const unpacked = join(dir, `unpacked-${arch}`)
      mkdirSync(unpacked)
      assert.equal((await run('tar', ['-xf', tarball, '-C', unpacked])).code, 0)
      const blob = (digest: string): Buffer => {
        const data = readFileSync(join(unpacked, 'blobs/sha256', digest.replace(/^sha256:/, '')))
        assert.equal(sha256(data), digest, `blob ${digest} has the wrong content`)
        return data
      }
      assert.deepEqual(JSON.parse(readFileSync(join(unpacked, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' })
      const index = JSON.parse(readFileSync(join(unpacked, 'index.json'), 'utf8'))
      assert.equal(index.schemaVersion, 2)
      assert.equal(index.manifests.length, 1)
      const desc = index.manifests[0]
      assert.equal(desc.mediaType, 'application/vnd.oci.image.manifest.v1+json')
      assert.equal(desc.platform.architecture, arch)
      assert.equal(desc.platform.os, 'linux')
      assert.equal(desc.annotations['io.containerd.image.name'], `docker.io/kubeedge/edgemesh-agent:v${version}`)
      const manifestBytes = blob(desc.digest)
      assert.equal(manifestBytes.length, desc.size)
      const manifest = JSON.parse(manifestBytes.toString())
      assert.equal(manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json')
      const configBytes = blob(manifest.config.digest)
      assert.equal(configBytes.length, manifest.config.size)
      const config = JSON.parse(configBytes.toString())
      assert.equal(config.architecture, arch)
      assert.equal(config.os, 'linux')
      assert.deepEqual(config.config.Entrypoint, ['/usr/local/bin/edgemesh'])
      assert.equal(config.rootfs.type, 'layers')
      assert.equal(config.rootfs.diff_ids.length, manifest.layers.length)
      const fs = join(dir, `rootfs-${arch}`)
      mkdirSync(fs)
      for (const [i, layer] of manifest.layers.entries()) {
        assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip')
        const gz = blob(layer.digest)
        assert.equal(gz.length, layer.size)
        const tar = gunzipSync(gz)
        assert.equal(sha256(tar), config.rootfs.diff_ids[i], `layer ${i}: diff_id is the digest of the uncompressed tar`)
        // Unpacked in order, as a runtime does.
        assert.equal((await run('tar', ['-xzf', join(unpacked, 'blobs/sha256', layer.digest.slice(7)), '-C', fs])).code, 0)
      }
      // docker-archive view: same config and layers, tagged.
      const docker = JSON.parse(readFileSync(join(unpacked, 'manifest.json'), 'utf8'))
      assert.equal(docker.length, 1)
      assert.deepEqual(docker[0].RepoTags, [`kubeedge/edgemesh-agent:v${version}`])
      assert.equal(docker[0].Config, `blobs/sha256/${manifest.config.digest.slice(7) as string}`)
      assert.deepEqual(docker[0].Layers, manifest.layers.map((l: { digest: string }) => `blobs/sha256/${l.digest.slice(7)}`))
      // What the agent needs is there, built for this architecture.
      const machine = arch === 'amd64' ? 62 : 183
      for (const f of ['usr/local/bin/node', 'usr/sbin/nft', 'usr/sbin/xtables-nft-multi', 'usr/bin/ip']) {
        assert.equal(elfMachine(join(fs, f)), machine, `${f} is built for ${arch}`)
      }
      const prebuilds = join(fs, 'app/node_modules/sodium-native/prebuilds')
      assert.deepEqual(await run('ls', [prebuilds]).then(r => r.stdout.trim()), `linux-${arch === 'amd64' ? 'x64' : 'arm64'}`)
      assert.deepEqual(await run('ls', [join(fs, 'app/node_modules/udx-native/prebuilds')]).then(r => r.stdout.trim()), `linux-${arch === 'amd64' ? 'x64' : 'arm64'}`)
      assert.deepEqual(await run('ls', [join(fs, 'app/node_modules/koffi/build/koffi')]).then(r => r.stdout.trim()), `linux_${arch === 'amd64' ? 'x64' : 'arm64'}`)
      assert.ok(readFileSync(join(fs, 'etc/ssl/certs/ca-certificates.crt'), 'utf8').split('BEGIN CERTIFICATE').length > 100, 'CA bundle')
      rootfs[arch] = fs
    })
  }

  test('amd64: the root filesystem runs edgemesh, nft, iptables and ip under chroot', async (t) => {
    const fs = rootfs.amd64
    if (fs === undefined || process.arch !== 'x64') return t.skip('needs the amd64 image and an x86-64 host')
    const cli = await run('chroot', [fs, '/usr/local/bin/edgemesh', '--version'])
    assert.equal(cli.code, 0, cli.stderr)
    assert.match(cli.stdout, new RegExp(`^EdgeMesh-TS ${version.replaceAll('.', '\\.')} \\(node v24\\.\\d+\\.\\d+, linux/x64\\)`))
    // The Node flags go on node's command line: V8 sizes the young generation only at start.
    const launcher = /^exec (.*) \/app\/edgemesh\.mjs/m.exec(readFileSync(join(fs, 'usr/local/bin/edgemesh'), 'utf8'))?.[1]?.split(' ') ?? []
    const launched = await run('chroot', [fs, ...launcher, '-p', 'process.execArgv.filter(a => a.startsWith("--")).join(" ")'])
    assert.equal(launched.stdout.trim(), AGENT_NODE_FLAGS.join(' '), launched.stderr)
    // `edgemesh gateway` gets the gateway's own Node flags.
    const flagsProbe = readFileSync(join(fs, 'usr/local/bin/edgemesh'), 'utf8').replaceAll('/app/edgemesh.mjs "$@"', '-p "process.execArgv.slice(0, -2).join(String.fromCharCode(32))"')
    writeFileSync(join(fs, 'flags-probe'), flagsProbe, { mode: 0o755 })
    assert.equal((await run('chroot', [fs, '/flags-probe', 'gateway'])).stdout.trim(), GATEWAY_NODE_FLAGS.join(' '))
    assert.equal((await run('chroot', [fs, '/flags-probe', 'agent'])).stdout.trim(), AGENT_NODE_FLAGS.join(' '))
    // glibc reads MALLOC_ARENA_MAX at start: the launcher exports it, and an operator's own value wins.
    const probe = readFileSync(join(fs, 'usr/local/bin/edgemesh'), 'utf8').replaceAll('/app/edgemesh.mjs "$@"', '-p "process.env.MALLOC_ARENA_MAX"')
    writeFileSync(join(fs, 'launch-probe'), probe, { mode: 0o755 })
    assert.equal((await run('chroot', [fs, '/launch-probe'])).stdout.trim(), MALLOC_ENV.MALLOC_ARENA_MAX)
    assert.equal((await run('env', ['MALLOC_ARENA_MAX=4', 'chroot', fs, '/launch-probe'])).stdout.trim(), '4')
    assert.match((await run('chroot', [fs, 'nft', '--version'])).stdout, /^nftables v1\./)
    assert.match((await run('chroot', [fs, 'iptables', '--version'])).stdout, /\(nf_tables\)/)
    assert.match((await run('chroot', [fs, 'ip', '-V'])).stdout, /iproute2/)
    // The native cipher the tunnel loads resolves from the bundled chunks.
    const sodium = await run('chroot', [fs, '/usr/local/bin/node', '-e',
      "const m = require(require.resolve('sodium-native', { paths: ['/app/chunks'] })); console.log(typeof m.crypto_stream_xor_init)"])
    assert.equal(sodium.stdout.trim(), 'function', sodium.stderr)
    // The UDP streams of punched paths, from the same place: a socket binds.
    const udx = await run('chroot', [fs, '/usr/local/bin/node', '-e',
      "const U = require(require.resolve('udx-native', { paths: ['/app/chunks'] })); const s = new U().createSocket(); s.bind(0, '127.0.0.1'); console.log(s.address().port > 0); s.close()"])
    assert.equal(udx.stdout.trim(), 'true', udx.stderr)
    // And the FFI the edge CNI opens its TUN device with.
    const koffi = await run('chroot', [fs, '/usr/local/bin/node', '-e',
      "const k = require(require.resolve('koffi', { paths: ['/app/chunks'] })); console.log(typeof k.load('libc.so.6').func)"])
    assert.equal(koffi.stdout.trim(), 'function', koffi.stderr)
    // The edge CNI's device is watched by the event loop: libuv's functions, from Node's own binary.
    const uv = await run('chroot', [fs, '/usr/local/bin/node', '-e',
      "const k = require(require.resolve('koffi', { paths: ['/app/chunks'] })); console.log(k.load(null).func('size_t uv_handle_size(int type)')(8) > 0)"])
    assert.equal(uv.stdout.trim(), 'true', uv.stderr)
    // The init container's `edgemesh cni install`: Node, the app and the plugin's launcher onto the host.
    const installed = await run('chroot', [fs, '/usr/local/bin/edgemesh', 'cni', 'install', '--host-root', '/host-test'])
    assert.equal(installed.code, 0, installed.stdout + installed.stderr)
    assert.equal(statSync(join(fs, 'host-test/opt/edgemesh/bin/node')).size, statSync(join(fs, 'usr/local/bin/node')).size)
    assert.ok(existsSync(join(fs, 'host-test/opt/edgemesh/app/edgemesh.mjs')))
    assert.match(readFileSync(join(fs, 'host-test/opt/cni/bin/edgemesh-cni'), 'utf8'), /^exec '\/opt\/edgemesh\/bin\/node' '\/opt\/edgemesh\/app\/edgemesh\.mjs' cni "\$@"$/m)
    assert.ok(existsSync(join(fs, 'host-test/etc/cni/net.d/10-edgemesh.conflist')))
  })

  test('arm64: the root filesystem runs edgemesh under qemu-user', async (t) => {
    const fs = rootfs.arm64
    if (fs === undefined || qemu === undefined) return t.skip('needs the arm64 image and qemu-user-static')
    const r = await run(qemu, ['-L', fs, join(fs, 'usr/local/bin/node'), join(fs, 'app/edgemesh.mjs'), '--version'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /\(node v24\.\d+\.\d+, linux\/arm64\)/)
    const sodium = await run(qemu, ['-L', fs, join(fs, 'usr/local/bin/node'), '-e',
      `const m = require(${JSON.stringify(join(fs, 'app/node_modules/sodium-native'))}); console.log(typeof m.crypto_stream_xor_init)`])
    assert.equal(sodium.stdout.trim(), 'function', sodium.stderr)
  })
})
