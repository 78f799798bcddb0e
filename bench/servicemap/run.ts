// bench/servicemap: 10k Services × 5 endpoints in a real kube-apiserver; the
// agent's data layer (probe.ts, a separate process) is timed to ready, its RSS
// read, and endpoint changes timed from watch event to published change.
//
//   [BENCH_AGENT_FLAGS=...] npm run bench:servicemap [-- --services 10000 --runs 5 --changes 20]
//
// Baselines measured in the same run: a bare `node` process's RSS, and a raw
// paginated list + JSON.parse of the same objects (what the API server can
// deliver), so ratios are comparable across machines.
import { spawn } from 'node:child_process'
import { bundleForBench } from '../bundle.ts'
import { AGENT_NODE_FLAGS, MALLOC_ENV } from '../../src/bin/node-flags.ts'
import { cpus, release } from 'node:os'
import { parseArgs } from 'node:util'
import https from 'node:https'
import { startControlPlane } from '../../test/helpers/control-plane.ts'
import type { ControlPlane } from '../../test/helpers/control-plane.ts'
import { benchSlice, createServices } from '../kube-services.ts'
import { median, takeBenchLock } from '../netns.ts'

takeBenchLock('bench:servicemap')

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '5' },
    runs: { type: 'string', default: '5' },
    changes: { type: 'string', default: '20' }
  }
})
const SERVICES = Number(values.services)
const ENDPOINTS = Number(values.endpoints)
const RUNS = Number(values.runs)
const CHANGES = Number(values.changes)

const now = (): number => performance.timeOrigin + performance.now()
const log = (msg: string): void => { process.stderr.write(`[bench:servicemap] ${msg}\n`) }

/** Baseline: paginated list + JSON.parse of both resources, no informer, no model. */
async function rawList (cp: ControlPlane): Promise<number> {
  const t0 = performance.now()
  for (const base of ['/api/v1/services', '/apis/discovery.k8s.io/v1/endpointslices']) {
    let cont = ''
    do {
      const body = await new Promise<any>((resolve, reject) => {
        https.get(new URL(`${base}?limit=500${cont !== '' ? `&continue=${encodeURIComponent(cont)}` : ''}`, cp.server), {
          ca: cp.ca, headers: { Authorization: `Bearer ${cp.adminToken}`, Accept: 'application/json' }
        }, res => {
          const parts: Buffer[] = []
          res.on('data', (c: Buffer) => parts.push(c))
          res.on('end', () => resolve(JSON.parse(Buffer.concat(parts).toString('utf8'))))
          res.on('error', reject)
        }).on('error', reject)
      })
      cont = body.metadata?.continue ?? ''
    } while (cont !== '')
  }
  return performance.now() - t0
}

async function bareNodeRss (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', 'setTimeout(() => console.log(process.memoryUsage().rss / 1e6), 2000)'])
    let out = ''
    p.stdout.on('data', (c: Buffer) => { out += c.toString() })
    p.on('exit', () => resolve(Number(out.trim())))
    p.on('error', reject)
  })
}

interface ProbeRun { readyMs: number, rssMB: number, changeLatencies: number[], writeToPublished: number[] }

async function runProbe (cp: ControlPlane, run: number): Promise<ProbeRun> {
  const probe = spawn(process.execPath, [...PROBE_FLAGS, probeBundle], {
    env: { ...process.env, ...MALLOC_ENV, KUBECONFIG: cp.kubeconfigPath },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const lines: Array<Record<string, any>> = []
  const waiters: Array<() => void> = []
  let buf = ''
  probe.stdout.setEncoding('utf8').on('data', (c: string) => {
    buf += c
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)))
      buf = buf.slice(i + 1)
      for (const w of waiters.splice(0)) w()
    }
  })
  const waitFor = async (pred: (l: Record<string, any>) => boolean, ms: number): Promise<Record<string, any>> => {
    const end = performance.now() + ms
    for (;;) {
      const hit = lines.find(pred)
      if (hit !== undefined) return hit
      if (performance.now() > end || probe.exitCode !== null) throw new Error('probe did not report in time')
      await new Promise<void>(resolve => { waiters.push(resolve); setTimeout(resolve, 100) })
    }
  }
  try {
    const ready = await waitFor(l => l.type === 'ready', 120_000)
    const rss = await waitFor(l => l.type === 'rss', 10_000)
    const changeLatencies: number[] = []
    const writeToPublished: number[] = []
    for (let c = 0; c < CHANGES; c++) {
      const i = (run * CHANGES + c) * 97 % SERVICES
      const before = lines.length
      const writtenAt = now()
      const r = await cp.request('PUT', `/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices/svc-${i}-abcde`, benchSlice(i, ENDPOINTS, run * CHANGES + c + 1))
      if (r.status >= 300) throw new Error(`update slice ${i}: ${r.status}`)
      const change = await waitFor(l => lines.indexOf(l) >= before && l.type === 'change' && l.key === `bench/svc-${i}`, 10_000)
      changeLatencies.push(change.publishedAt - change.eventAt)
      writeToPublished.push(change.publishedAt - writtenAt)
    }
    return { readyMs: ready.msSinceProcessStart, rssMB: rss.rssMB, changeLatencies, writeToPublished }
  } finally {
    probe.kill('SIGTERM')
    await new Promise(resolve => probe.once('exit', resolve))
  }
}

// The V8 flags and malloc settings the image's launcher gives, and the production bundle;
// BENCH_AGENT_FLAGS adds Node flags (e.g. to weigh a heap setting at 10k services).
const PROBE_FLAGS = [...AGENT_NODE_FLAGS, ...(process.env.BENCH_AGENT_FLAGS ?? '').split(' ').filter(f => f !== '')]
const probeBundle = await bundleForBench(new URL('./probe.ts', import.meta.url).pathname)
const cp = await startControlPlane()
try {
  log(`control plane up in ${Math.round(cp.startupMs)} ms; creating ${SERVICES} services × ${ENDPOINTS} endpoints`)
  const populateMs = await createServices(cp, SERVICES, ENDPOINTS, i => { if (i % 2000 === 0) log(`created ${i}/${SERVICES}`) })
  log(`populated in ${(populateMs / 1000).toFixed(1)} s`)
  const runs: Array<ProbeRun & { rawListMs: number, bareRssMB: number }> = []
  for (let run = 0; run < RUNS; run++) {
    // Interleave baselines with the measured runs so load drifts hit both.
    const rawListMs = await rawList(cp)
    const bareRssMB = await bareNodeRss()
    const r = await runProbe(cp, run)
    runs.push({ ...r, rawListMs, bareRssMB })
    log(`run ${run + 1}/${RUNS}: ready ${Math.round(r.readyMs)} ms (raw list ${Math.round(rawListMs)} ms), rss ${r.rssMB.toFixed(1)} MB, change p50 ${median(r.changeLatencies).toFixed(2)} ms`)
  }
  const allChanges = runs.flatMap(r => r.changeLatencies)
  const allWrites = runs.flatMap(r => r.writeToPublished)
  const result = {
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, kernel: release(), node: process.version },
    services: SERVICES,
    endpointsPerService: ENDPOINTS,
    runs: RUNS,
    readyMs: median(runs.map(r => r.readyMs)),
    rawListMs: median(runs.map(r => r.rawListMs)),
    readyToRawList: median(runs.map(r => r.readyMs / r.rawListMs)),
    rssMB: median(runs.map(r => r.rssMB)),
    bareNodeRssMB: median(runs.map(r => r.bareRssMB)),
    changeEventToPublishedMs: { p50: median(allChanges), max: Math.max(...allChanges) },
    changeWriteToPublishedMs: { p50: median(allWrites), max: Math.max(...allWrites) }
  }
  console.log(JSON.stringify(result, null, 2))
  const ok = result.readyMs <= 5000 && result.changeEventToPublishedMs.max <= 50 && result.rssMB <= 120
  log(ok ? 'targets met (ready ≤ 5 s, change ≤ 50 ms, RSS ≤ 120 MB)' : 'TARGETS MISSED')
  process.exitCode = ok ? 0 : 1
} finally {
  await cp.stop()
}
