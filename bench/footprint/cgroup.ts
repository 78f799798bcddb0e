// bench/footprint/cgroup.ts: what the agent's release of its start's pages
// (src/bin/startup-pages.ts) does to the numbers a node's kernel and kubelet
// go by, besides RSS. The agent with every module on a standalone file, in a
// network namespace, each run in a fresh cgroup v1 memory cgroup (as a
// container), on its own copy of `node` whose page cache was dropped first,
// so the binary's pages are charged to that cgroup as in a container. Read
// after the idle time: RSS and its anonymous part, the cgroup's charge, its
// page cache and inactive file pages, and the charge minus the inactive file
// pages (the working set the kubelet reports and evicts by).
//
//   sudo npm run bench:footprint:cgroup [-- --runs 3 --idle-ms 30000]
import { execFileSync, spawn } from 'node:child_process'
import { copyFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { bundleForBench } from '../bundle.ts'
import { AGENT_NODE_FLAGS, MALLOC_ENV } from '../../src/bin/node-flags.ts'
import { median, takeBenchLock } from '../netns.ts'
import { residentMB } from '../../src/bin/startup-pages.ts'

takeBenchLock('bench:footprint:cgroup')

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, 'idle-ms': { type: 'string', default: '30000' } } })
const RUNS = Number(values.runs)
const IDLE_MS = Number(values['idle-ms'])
const MEMORY = '/sys/fs/cgroup/memory'
if (process.getuid?.() !== 0 || !existsSync(MEMORY)) throw new Error(`needs root and cgroup v1 memory (${MEMORY})`)
const root = new URL('../../', import.meta.url).pathname

interface Reading { rss: number, anon: number, charge: number, cache: number, inactiveFile: number, workingSet: number }

function read (pid: number, cgroup: string): Reading {
  const { rss, anon } = residentMB(pid)
  const stat = readFileSync(join(cgroup, 'memory.stat'), 'utf8')
  const bytes = (field: string): number => Number(new RegExp(`^${field} (\\d+)$`, 'm').exec(stat)?.[1] ?? NaN) / 1024 / 1024
  const charge = Number(readFileSync(join(cgroup, 'memory.usage_in_bytes'), 'utf8')) / 1024 / 1024
  const inactiveFile = bytes('total_inactive_file')
  return { rss, anon, charge, cache: bytes('total_cache'), inactiveFile, workingSet: charge - inactiveFile }
}

const bundle = await bundleForBench(join(root, 'src/bin/edgemesh.ts'))
const dir = mkdtempSync(join(tmpdir(), 'edgemesh-footprint-cgroup-'))
writeFileSync(join(dir, 'psk'), 'edgemesh-ts-test-psk-not-for-any-real-cluster')
const config = (release: boolean): string => {
  const file = join(dir, `all-${String(release)}.yaml`)
  writeFileSync(file, `kubeAPIConfig: {standaloneFile: ${join(root, 'examples/standalone/services.yaml')}}\ncommonConfig: {stateDir: ${dir}, releaseStartupPages: ${String(release)}}\nmodules: {edgeDNS: {enable: true}, edgeProxy: {enable: true}, edgeTunnel: {enable: true, psk: {path: ${join(dir, 'psk')}}, relayNodes: [{nodeName: relay, advertiseAddress: [127.0.0.1]}]}}\n`)
  return file
}
const variants: Array<[string, string]> = [['start\'s pages released (as shipped)', config(true)], ['start\'s pages kept', config(false)]]
const ns = `emfc${process.pid}`
execFileSync('ip', ['netns', 'add', ns])
execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up'])

async function measure (file: string, run: number): Promise<Reading> {
  // A fresh copy, written back and dropped from the page cache: the agent's faults charge its pages to its cgroup.
  const copyDir = mkdtempSync(join(tmpdir(), 'edgemesh-node-'))
  const node = join(copyDir, 'node')
  copyFileSync(process.execPath, node)
  chmodSync(node, 0o755)
  execFileSync('sync', [node])
  execFileSync('dd', [`if=${node}`, 'of=/dev/null', 'iflag=nocache', 'count=0'], { stdio: 'ignore' })
  const cgroup = join(MEMORY, `edgemesh-footprint-${process.pid}-${run}`)
  mkdirSync(cgroup)
  const argv = ['ip', 'netns', 'exec', ns, node, ...AGENT_NODE_FLAGS, bundle, 'agent', '--config-file', file]
  const p = spawn('sh', ['-c', `echo $$ > ${join(cgroup, 'cgroup.procs')} && exec "$@"`, 'sh', ...argv], { env: { ...process.env, ...MALLOC_ENV, NODE_NAME: 'bench-node', NAMESPACE: 'kubeedge' }, stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  p.stderr.on('data', (c: Buffer) => { log += c.toString() })
  try {
    await new Promise(resolve => setTimeout(resolve, IDLE_MS))
    if (p.exitCode !== null) throw new Error(`the agent exited early:\n${log.slice(-2000)}`)
    return read(p.pid as number, cgroup)
  } finally {
    p.kill('SIGTERM')
    if (p.exitCode === null) await new Promise(resolve => p.once('exit', resolve))
    rmdirSync(cgroup)
    rmSync(copyDir, { recursive: true, force: true })
  }
}

const results = new Map<string, Reading[]>(variants.map(([name]) => [name, []]))
try {
  for (let run = 0; run < RUNS; run++) {
    for (let i = 0; i < variants.length; i++) {
      const [name, file] = variants[(i + run) % variants.length] as [string, string]
      results.get(name)?.push(await measure(file, run * variants.length + i))
    }
    process.stderr.write(`[bench:footprint:cgroup] run ${run + 1}/${RUNS} done\n`)
  }
} finally {
  execFileSync('ip', ['netns', 'del', ns])
  rmSync(dir, { recursive: true, force: true })
}
console.log(`machine: ${cpus().length} vCPU ${cpus()[0]?.model ?? ''}, kernel ${release()}, node ${process.version}; every module, standalone file, netns; idle ${IDLE_MS} ms; median of ${RUNS}`)
console.log('| agent | RSS MB | of it anonymous | cgroup charge | page cache | inactive file | charge − inactive file (working set) |')
console.log('|---|---|---|---|---|---|---|')
for (const [name, rs] of results) {
  const m = (k: keyof Reading): string => median(rs.map(r => r[k])).toFixed(1)
  console.log(`| ${name} | ${m('rss')} | ${m('anon')} | ${m('charge')} | ${m('cache')} | ${m('inactiveFile')} | ${m('workingSet')} |`)
}
