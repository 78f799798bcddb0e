// The offline bundle: everything an operator needs to install EdgeMesh on a
// cluster with no internet, in one tarball.
//
//   npm run bundle [-- --arch amd64|arm64 --out dist/offline --image-arch amd64,arm64]
//
// edgemesh-offline-<version>-<arch>/
//   install.sh, VERSION, README.txt
//   helm-charts/edgemesh.tgz, helm-charts/edgemesh-gateway.tgz
//   images/edgemesh-agent-<version>-{amd64,arm64}.tar, images/IMAGE
//   crds/istio/*.yaml, crds/gateway-api/*.yaml, manifests/*.yaml
//   bin/edgemesh + lib/ (the CLI for <arch>: Node and the bundled app)
//   bin/helm, bin/kubectl (static, for <arch>; install.sh uses them when the host has none)
//
// Images for both architectures are included: clusters mix amd64 cloud nodes
// with arm64 edge nodes. <arch> is the machine install.sh and the CLI run on.
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = fileURLToPath(new URL('..', import.meta.url))
const hostArch = process.arch === 'arm64' ? 'arm64' : 'amd64'
const { values: opt } = parseArgs({
  options: {
    arch: { type: 'string', default: hostArch },
    out: { type: 'string', default: join(root, 'dist/offline') },
    // Which images go in; both by default (tests that only install take the host's).
    'image-arch': { type: 'string', default: 'amd64,arm64' }
  }
})
const arch = opt.arch as string
if (arch !== 'amd64' && arch !== 'arm64') throw new Error(`--arch: amd64 or arm64, got ${arch}`)
const imageArches = [...new Set([arch, ...(opt['image-arch'] as string).split(',').map((a) => a.trim())])]
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version
const helm = join(root, '.tools/bin/helm')
if (!existsSync(helm)) throw new Error(`${helm} is missing: run bash scripts/tools/build-helm.sh`)

const name = `edgemesh-offline-${version}-${arch}`
const work = mkdtempSync(join(tmpdir(), 'edgemesh-bundle-'))
try {
  const top = join(work, name)
  for (const d of ['helm-charts', 'images', 'crds', 'manifests', 'bin']) mkdirSync(join(top, d), { recursive: true })

  // Images for every architecture, keeping this arch's root filesystem for the CLI.
  const images = join(work, 'images-build')
  execFileSync(process.execPath, [join(root, 'scripts/image.ts'), '--arch', imageArches.join(','), '--out', images, '--keep-rootfs'], { stdio: 'inherit' })
  for (const a of imageArches) {
    const file = `edgemesh-agent-${version}-${a}.tar`
    renameSync(join(images, file), join(top, 'images', file))
  }
  // The tag the images carry, which install.sh passes as agent.image.
  const manifest = JSON.parse(execFileSync('tar', ['-xOf', join(top, 'images', `edgemesh-agent-${version}-${arch}.tar`), 'manifest.json'], { encoding: 'utf8' })) as Array<{ RepoTags: string[] }>
  writeFileSync(join(top, 'images/IMAGE'), `${manifest[0]?.RepoTags[0] ?? ''}\n`)

  // The CLI: this arch's Node and app, from the image's root filesystem.
  const rootfs = join(images, `rootfs-${arch}`)
  cpSync(join(rootfs, 'app'), join(top, 'lib'), { recursive: true })
  copyFileSync(join(rootfs, 'usr/local/bin/node'), join(top, 'lib/node'))
  chmodSync(join(top, 'lib/node'), 0o755)
  writeFileSync(join(top, 'bin/edgemesh'), '#!/bin/sh\nhere="$(cd "$(dirname "$0")/.." && pwd)"\nexec "$here/lib/node" "$here/lib/edgemesh.mjs" "$@"\n', { mode: 0o755 })

  // Helm and kubectl for <arch>, built from their Go modules (scripts/tools/build-bundle-clis.sh, cached).
  const clis = execFileSync('bash', [join(root, 'scripts/tools/build-bundle-clis.sh'), arch], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim()
  for (const tool of ['helm', 'kubectl']) {
    copyFileSync(join(clis, tool), join(top, 'bin', tool))
    chmodSync(join(top, 'bin', tool), 0o755)
  }

  // Charts under the names the upstream guides use (./helm-charts/edgemesh.tgz).
  for (const chart of ['edgemesh', 'edgemesh-gateway']) {
    const pkgDir = join(work, `pkg-${chart}`)
    execFileSync(helm, ['package', join(root, 'deploy/helm', chart), '--destination', pkgDir], { stdio: 'pipe' })
    const chartVersion = /^version:\s*(\S+)/m.exec(readFileSync(join(root, 'deploy/helm', chart, 'Chart.yaml'), 'utf8'))?.[1] ?? ''
    renameSync(join(pkgDir, `${chart}-${chartVersion}.tgz`), join(top, 'helm-charts', `${chart}.tgz`))
  }
  cpSync(join(root, 'deploy/helm/edgemesh/crds'), join(top, 'crds/istio'), { recursive: true })
  cpSync(join(root, 'deploy/helm/edgemesh-gateway/crds'), join(top, 'crds/gateway-api'), { recursive: true })
  cpSync(join(root, 'deploy/manifests'), join(top, 'manifests'), { recursive: true })
  copyFileSync(join(root, 'deploy/offline/install.sh'), join(top, 'install.sh'))
  chmodSync(join(top, 'install.sh'), 0o755)
  copyFileSync(join(root, 'deploy/offline/README.txt'), join(top, 'README.txt'))
  writeFileSync(join(top, 'VERSION'), `${version}\n`)

  mkdirSync(opt.out as string, { recursive: true })
  const tarball = join(opt.out as string, `${name}.tar.gz`)
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-czf', tarball, '-C', work, name])
  console.log(`${tarball} (${(statSync(tarball).size / 1e6).toFixed(1)} MB)`)
} finally {
  rmSync(work, { recursive: true, force: true })
}
