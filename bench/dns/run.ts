// DNS bench: dnsperf against our server and against dnsmasq serving the same
// names on this machine, in one run, interleaved rounds, medians.
//
//   npm run bench:dns [-- --rounds 5 --seconds 5 --services 1000 --clients 1 --latency-qps 10000 --out /tmp/dns-results.md]  (results go into docs/benchmarks.md)
//
// Layout (all on loopback): an upstream dnsmasq on 127.0.0.4:5302 holds the
// "external" names; dnsmasq under test on 127.0.0.3:5301 holds the cluster
// names in a hosts file and forwards the rest to the upstream (with its
// cache); our server on 127.0.0.2:5300 answers the cluster zone from its
// service map and forwards the rest to the same upstream (with its cache);
// bare.ts on 127.0.0.5:5303 answers everything with one fixed record, the
// floor for a Node UDP server on this machine.
// Workloads: "cluster" (1000 cluster A names, all hits) and "forward" (1000
// external names, cache warmed right before each run: cache-hit forwarding).
// Each round runs every (server, workload) pair once, in rotating order, as
// a throughput run (-q outstanding) and a latency run at a fixed rate
// (p50/p99 of per-query times). Every run starts warm (one pass first).
// Needs root for apt-get when dnsperf or dnsmasq is missing.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { median, takeBenchLock } from '../netns.ts'

takeBenchLock('bench:dns')

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    services: { type: 'string', default: '1000' },
    clients: { type: 'string', default: '1' },
    outstanding: { type: 'string', default: '100' },
    'latency-qps': { type: 'string', default: '10000' },
    'latency-seconds': { type: 'string', default: '3' },
    sockets: { type: 'string', default: '1' },
    out: { type: 'string' }
  }
})
const ROUNDS = Number(opt.rounds)
const SERVICES = Number(opt.services)
const here = fileURLToPath(new URL('.', import.meta.url))

function have (cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

function ensureTools (): void {
  const missing = [['dnsperf', 'dnsperf'], ['dnsmasq', 'dnsmasq']].filter(([cmd]) => !have(cmd as string) && !have(`/usr/sbin/${cmd as string}`)).map(([, pkg]) => pkg as string)
  if (missing.length === 0) return
  if (process.getuid?.() !== 0) {
    console.error(`bench:dns needs ${missing.join(', ')}: run as root (installs with apt-get) or install them`)
    process.exit(2)
  }
  console.error(`installing ${missing.join(', ')} …`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  if (spawnSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env }).status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    if (spawnSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env }).status !== 0) process.exit(2)
  }
}

function shuffled<T> (items: T[]): T[] {
  let x = 12345
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    const j = x % (i + 1)
    ;[a[i], a[j]] = [a[j] as T, a[i] as T]
  }
  return a
}

const ip = (base: string, i: number): string => `${base}.${Math.floor(i / 250)}.${(i % 250) + 1}`

/** Polls a server with one A query until it answers (bounded). */
async function answers (host: string, port: number, name: string, timeoutMs = 10_000): Promise<void> {
  const qname = Buffer.concat([...name.split('.').map(l => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])])
  const q = Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), qname])
  const deadline = Date.now() + timeoutMs
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    const ok = await new Promise<boolean>(resolve => {
      const s = createSocket('udp4')
      const t = setTimeout(() => { s.close(); resolve(false) }, 100)
      s.on('message', () => { clearTimeout(t); s.close(); resolve(true) })
      s.send(q, port, host)
    })
    if (ok) return
  }
  throw new Error(`${host}:${port} does not answer ${name}`)
}

interface Server { name: 'edgemesh' | 'dnsmasq' | 'bare node', host: string, port: number, proc: ChildProcess }
interface Sample { qps: number, lost: number, sent: number, p50?: number, p99?: number }

function dnsperf (server: Server, file: string, args: string[]): string {
  return execFileSync('dnsperf', ['-s', server.host, '-p', String(server.port), '-d', file, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
}

function throughput (server: Server, file: string): Sample {
  const out = dnsperf(server, file, ['-l', opt.seconds, '-c', opt.clients, '-q', opt.outstanding])
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN)
  return { qps: num(/Queries per second:\s+([\d.]+)/), lost: num(/Queries lost:\s+(\d+)/), sent: num(/Queries sent:\s+(\d+)/) }
}

function latency (server: Server, file: string): { p50: number, p99: number, lost: number } {
  const out = dnsperf(server, file, ['-l', opt['latency-seconds'], '-c', opt.clients, '-Q', opt['latency-qps'], '-v'])
  const lat = out.split('\n').filter(l => l.startsWith('> ')).map(l => Number(l.slice(l.lastIndexOf(' ') + 1))).sort((a, b) => a - b)
  const at = (q: number): number => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? NaN
  return { p50: at(0.5) * 1000, p99: at(0.99) * 1000, lost: Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? NaN) }
}

async function main (): Promise<void> {
  ensureTools()
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-bench-dns-'))
  const procs: ChildProcess[] = []
  const cleanup = (): void => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
  }
  process.on('exit', cleanup)
  process.on('SIGINT', () => process.exit(130))
  const cluster = Array.from({ length: SERVICES }, (_, i) => `svc-${i}.default.svc.cluster.local`)
  const external = Array.from({ length: SERVICES }, (_, i) => `ext-${i}.example.test`)
  writeFileSync(join(dir, 'hosts'), cluster.map((n, i) => `${ip('10.96', i)} ${n}\n`).join(''))
  writeFileSync(join(dir, 'ext-hosts'), external.map((n, i) => `${ip('10.200', i)} ${n}\n`).join(''))
  writeFileSync(join(dir, 'cluster.txt'), shuffled(cluster).map(n => `${n} A\n`).join(''))
  writeFileSync(join(dir, 'forward.txt'), shuffled(external).map(n => `${n} A\n`).join(''))
  writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.4\n')
  const dnsmasqBin = have('dnsmasq') ? 'dnsmasq' : '/usr/sbin/dnsmasq'
  const common = ['-k', '--conf-file=/dev/null', '--bind-interfaces', '--no-resolv', '--no-hosts', '--cache-size=10000', '--user=root']
  const start = (argv: string[]): ChildProcess => {
    const p = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] })
    procs.push(p)
    return p
  }
  start([dnsmasqBin, ...common, '--port=5302', '--listen-address=127.0.0.4', `--addn-hosts=${join(dir, 'ext-hosts')}`, '--local-ttl=600'])
  const servers: Server[] = [
    {
      name: 'edgemesh',
      host: '127.0.0.2',
      port: 5300,
      proc: start([process.execPath, join(here, 'server.ts'), '--address', '127.0.0.2', '--port', '5300', '--services', String(SERVICES),
        '--resolv', join(dir, 'resolv.conf'), '--upstream-port', '5302', '--sockets', opt.sockets])
    },
    {
      name: 'dnsmasq',
      host: '127.0.0.3',
      port: 5301,
      // Cluster names at TTL 30 as ours; forwarded names cached (upstream TTL 600).
      proc: start([dnsmasqBin, ...common, '--port=5301', '--listen-address=127.0.0.3', `--addn-hosts=${join(dir, 'hosts')}`, '--local-ttl=30', '--server=127.0.0.4#5302'])
    },
    {
      // The floor for any Node server here: a fixed answer, nothing looked up (bare.ts).
      name: 'bare node',
      host: '127.0.0.5',
      port: 5303,
      proc: start([process.execPath, join(here, 'bare.ts'), '127.0.0.5', '5303'])
    }
  ]
  await answers('127.0.0.4', 5302, 'ext-0.example.test')
  for (const s of servers) await answers(s.host, s.port, 'svc-0.default.svc.cluster.local')

  const workloads = ['cluster', 'forward'] as const
  const pairs = servers.flatMap(s => workloads.map(w => ({ s, w })))
  const results = new Map<string, Sample[]>(pairs.map(({ s, w }) => [`${s.name}/${w}`, []]))
  for (let r = 0; r < ROUNDS; r++) {
    const order = pairs.map((_, i) => pairs[(i + r) % pairs.length] as typeof pairs[number])
    for (const { s, w } of order) {
      const file = join(dir, `${w}.txt`)
      dnsperf(s, file, ['-n', '1'])
      const t = throughput(s, file)
      dnsperf(s, file, ['-n', '1'])
      const l = latency(s, file)
      results.get(`${s.name}/${w}`)?.push({ ...t, p50: l.p50, p99: l.p99, lost: t.lost + l.lost })
      console.error(`round ${r + 1}/${ROUNDS} ${s.name.padEnd(8)} ${w.padEnd(7)} ${t.qps.toFixed(0).padStart(6)} qps  lost ${t.lost + l.lost}  p50 ${l.p50.toFixed(3)} ms  p99 ${l.p99.toFixed(3)} ms`)
    }
  }

  const row = (name: string, w: string): { qps: number, qpsMin: number, qpsMax: number, p50: number, p99: number, lost: number, sent: number } => {
    const xs = results.get(`${name}/${w}`) ?? []
    return {
      qps: median(xs.map(x => x.qps)),
      qpsMin: Math.min(...xs.map(x => x.qps)),
      qpsMax: Math.max(...xs.map(x => x.qps)),
      p50: median(xs.map(x => x.p50 ?? NaN)),
      p99: median(xs.map(x => x.p99 ?? NaN)),
      lost: xs.reduce((a, x) => a + x.lost, 0),
      sent: xs.reduce((a, x) => a + x.sent, 0)
    }
  }
  const kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()
  const dnsperfVersion = /Version ([\d.]+)/.exec(spawnSync('dnsperf', ['-h'], { encoding: 'utf8' }).stderr + spawnSync('dnsperf', ['-h'], { encoding: 'utf8' }).stdout)?.[1] ?? '?'
  const dnsmasqVersion = /version ([\d.]+)/i.exec(execFileSync(dnsmasqBin, ['--version'], { encoding: 'utf8' }))?.[1] ?? '?'
  const lines = [
    '## DNS (EdgeDNS vs dnsmasq)',
    '',
    `Command: \`npm run bench:dns -- --rounds ${ROUNDS} --seconds ${opt.seconds} --clients ${opt.clients}\` (${new Date().toISOString().slice(0, 10)}).`,
    `Machine: ${cpus().length} vCPU (${cpus()[0]?.model ?? '?'}), kernel ${kernel}, Node ${process.version}, dnsperf ${dnsperfVersion}, dnsmasq ${dnsmasqVersion}; servers and dnsperf share the machine.`,
    `Load: ${SERVICES} names per workload, dnsperf \`-c ${opt.clients} -q ${opt.outstanding} -l ${opt.seconds}\` for QPS; latency from a separate run per round at a fixed ${opt['latency-qps']} queries/s (\`-Q ${opt['latency-qps']} -l ${opt['latency-seconds']}\`, per-query times from \`-v\`).`,
    `Medians of ${ROUNDS} interleaved rounds (QPS min–max in brackets). "forward" = names outside the cluster, answered from each server's forwarding cache.`,
    '',
    '| workload | server | QPS | ratio to dnsmasq | p50 ms | p99 ms | lost |',
    '|---|---|---|---|---|---|---|'
  ]
  for (const w of workloads) {
    const base = row('dnsmasq', w)
    for (const s of servers) {
      const x = row(s.name, w)
      lines.push(`| ${w} | ${s.name} | ${(x.qps / 1000).toFixed(1)}k (${(x.qpsMin / 1000).toFixed(1)}–${(x.qpsMax / 1000).toFixed(1)}k) | ${(x.qps / base.qps).toFixed(2)}× | ${x.p50.toFixed(3)} | ${x.p99.toFixed(3)} | ${x.lost} of ${x.sent} |`)
    }
  }
  const text = lines.join('\n') + '\n'
  console.log(text)
  if (opt.out !== undefined) {
    const previous = (() => { try { return readFileSync(opt.out, 'utf8') } catch { return '' } })()
    const notes = previous.includes('\n### Notes') ? previous.slice(previous.indexOf('\n### Notes')) : ''
    writeFileSync(opt.out, text + notes)
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err)
  process.exit(1)
})
