/**
 * Puts the CNI plugin on a host that has no Node.js: the DaemonSet's init
 * container runs `edgemesh cni install` with the host's directories mounted
 * under a root (`/host`). It copies the Node binary and the bundled app into
 * `installDir` (only files that changed: an upgrade rewrites the app, a
 * restart nothing), writes the plugin `edgemesh-cni` into the CNI bin
 * directory as a two-line launcher, and writes a conflist only where no
 * other CNI is configured: edge nodes that run pods with no CNI get ours, a
 * cloud node with flannel or Calico keeps its own. Every file is written
 * beside its target and renamed over it, so a runtime calling the plugin
 * meanwhile runs the old one or the new one, never half of one.
 */
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { CniError, CNI_IO_FAILURE } from './errors.ts'

export const PLUGIN_NAME = 'edgemesh-cni'
export const CONFLIST_NAME = '10-edgemesh.conflist'

export interface InstallOptions {
  /** Where the host's filesystem is mounted ('/' when run on the host). */
  hostRoot: string
  /** Host paths (as the runtime sees them). */
  binDir: string
  confDir: string
  installDir: string
  /** What the conflist hands the plugin: the agent's block file, the bridge and the leases' directory. */
  subnetFile: string
  bridge: string
  /** Where the plugin keeps its address leases. */
  dataDir: string
  /** What to copy: this Node binary, and the app directory holding `entry`. */
  nodeBinary: string
  appDir: string
  entry: string
}

export interface InstallReport {
  /** Files copied or written, as host paths. */
  written: string[]
  unchanged: number
  /** The conflist: written, already as it should be, or why it was left out. */
  conflist: 'written' | 'unchanged' | { skipped: string }
}

/** Installs the plugin; idempotent. Errors name the path that failed. */
export async function installPlugin (o: InstallOptions): Promise<InstallReport> {
  const report: InstallReport = { written: [], unchanged: 0, conflist: 'unchanged' }
  const onHost = (hostPath: string): string => join(o.hostRoot, hostPath)
  const note = (changed: boolean, hostPath: string): void => { if (changed) report.written.push(hostPath); else report.unchanged++ }
  const nodeTarget = join(o.installDir, 'bin', 'node')
  note(await copyIfChanged(o.nodeBinary, onHost(nodeTarget), 0o755), nodeTarget)
  const appTarget = join(o.installDir, 'app')
  const files = await listFiles(o.appDir)
  for (const f of files) note(await copyIfChanged(join(o.appDir, f), onHost(join(appTarget, f))), join(appTarget, f))
  // Chunks of an earlier bundle (their names carry content hashes).
  const keep = new Set(files)
  for (const f of await listFiles(onHost(appTarget))) if (!keep.has(f)) await rm(onHost(join(appTarget, f)), { force: true })
  const launcher = `#!/bin/sh\n# Installed by edgemesh cni install: the edge CNI plugin (see EdgeMesh-TS src/cni/README.md).\nexec '${nodeTarget}' '${join(appTarget, o.entry)}' cni "$@"\n`
  note(await writeIfChanged(onHost(join(o.binDir, PLUGIN_NAME)), launcher, 0o755), join(o.binDir, PLUGIN_NAME))
  const others = (await listNames(onHost(o.confDir))).filter(n => n !== CONFLIST_NAME && /\.(conf|conflist|json)$/.test(n))
  if (others.length > 0) {
    report.conflist = { skipped: `${o.confDir} holds another CNI's configuration (${others.sort().join(', ')}): the plugin is installed, pods keep that CNI` }
  } else {
    const conflist = JSON.stringify({
      cniVersion: '1.0.0',
      name: 'edgemesh',
      plugins: [{ type: PLUGIN_NAME, subnetFile: o.subnetFile, bridge: o.bridge, dataDir: o.dataDir }]
    }, null, 2) + '\n'
    const changed = await writeIfChanged(onHost(join(o.confDir, CONFLIST_NAME)), conflist, 0o644)
    report.conflist = changed ? 'written' : 'unchanged'
  }
  return report
}

/** Copies `from` over `to` unless `to` already has its size and modification time; true when it copied. */
async function copyIfChanged (from: string, to: string, mode?: number): Promise<boolean> {
  const src = await stat(from).catch((err: unknown) => { throw new CniError(CNI_IO_FAILURE, `cannot read ${from}: ${(err as Error).message}`, undefined, { cause: err }) })
  const dst = await stat(to).catch(() => undefined)
  // Within a millisecond: utimes rounds through floating-point seconds.
  if (dst !== undefined && dst.size === src.size && Math.abs(dst.mtimeMs - src.mtimeMs) < 1) return false
  await atomically(to, async tmp => {
    await copyFile(from, tmp)
    if (mode !== undefined) await chmod(tmp, mode)
    await utimes(tmp, src.atime, src.mtime)
  })
  return true
}

async function writeIfChanged (to: string, content: string, mode: number): Promise<boolean> {
  if (await readFile(to, 'utf8').catch(() => undefined) === content) return false
  await atomically(to, async tmp => { await writeFile(tmp, content, { mode }) })
  return true
}

/** Writes `to` through a temporary file beside it and a rename. */
async function atomically (to: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${to}.edgemesh-tmp`
  try {
    await mkdir(dirname(to), { recursive: true })
    await write(tmp)
    await rename(tmp, to)
  } catch (err) {
    await rm(tmp, { force: true })
    throw new CniError(CNI_IO_FAILURE, `cannot write ${to}: ${(err as Error).message}`, undefined, { cause: err })
  }
}

/** Files under `dir`, relative to it; none when it does not exist. */
async function listFiles (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter(e => e.isFile()).map(e => relative(dir, join(e.parentPath, e.name))).sort()
}

async function listNames (dir: string): Promise<string[]> {
  return await readdir(dir).catch(() => [])
}
