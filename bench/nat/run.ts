// bench/nat: the NAT matrix. In the natkinds lab (two public relays; one node
// behind each kind of NAT: full cone, address-restricted, port-restricted,
// symmetric, symmetric keeping the port for a first destination, UDP blocked,
// symmetric with a miniupnpd router that maps the node a port),
// every pair of nodes punches `--attempts` times, each attempt from fresh
// sockets (fresh mappings on both NATs), with the agent's own code
// (NatDiscovery against the relays' reflectors, then DirectPaths; peer.ts).
// Reports per pair: attempts direct at the first try, median and p99 time to
// a direct path proven both ways and a ping echoed over it, and why the
// others stayed relayed.
//
// Below the table: each attempt in which a node behind a NAT had no port
// mapping from its router, with the mapper's reasons (only the upnp router
// gives one, so misses elsewhere are expected and not listed).
//
//   sudo npm run bench:nat [-- --attempts 100 --out /tmp/nat.md --kinds upnp,symmetric]
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { writeFileSync } from 'node:fs'
import { cpus, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Lab, natkinds } from '../../test/lab/index.ts'
import type { LabProcess } from '../../test/lab/index.ts'
import { takeBenchLock } from '../netns.ts'

takeBenchLock('bench:nat')

const { values: opt } = parseArgs({ options: { attempts: { type: 'string', default: '100' }, out: { type: 'string' }, kinds: { type: 'string' } } })
const ATTEMPTS = Number(opt.attempts)
if (process.getuid?.() !== 0) { console.error('bench:nat needs root (network namespaces, nftables)'); process.exit(2) }

const root = fileURLToPath(new URL('../../', import.meta.url))
const entry = join(root, 'src/bin/edgemesh.ts')
const PEER = fileURLToPath(new URL('./peer.ts', import.meta.url))
const SIGNAL = fileURLToPath(new URL('./signal.ts', import.meta.url))
const RELAYS = 'relay1=198.18.0.10:20006,relay2=198.18.0.11:20006'
const KINDS = opt.kinds?.split(',')
const EVERY_NODE = natkinds.sites.filter(s => s.nat !== undefined).map(s => ({ node: (s.nodes[0] as { name: string }).name, kind: s.nat?.mode as string }))
const NODES = EVERY_NODE.filter(n => KINDS === undefined || KINDS.includes(n.kind))
if (NODES.length < 2) { console.error(`--kinds needs two of: ${EVERY_NODE.map(n => n.kind).join(', ')}`); process.exit(2) }
/** The node whose router maps ports (a miss there is worth a line). */
const MAPPING_KIND = 'upnp'
const mappingMisses: string[] = []
let leftOnRouter: number | undefined
const UNPREDICTABLE = new Set(['symmetric', 'symmetric-port-preserving'])

/** Rounds of disjoint pairs covering every pair once (the circle method): pairs in a round run at once. */
function rounds<T> (items: T[]): Array<Array<[T, T]>> {
  const list = [...items]
  if (list.length % 2 === 1) list.push(undefined as T)
  const out: Array<Array<[T, T]>> = []
  for (let r = 0; r < list.length - 1; r++) {
    const round: Array<[T, T]> = []
    for (let i = 0; i < list.length / 2; i++) {
      const a = list[i] as T
      const b = list[list.length - 1 - i] as T
      if (a !== undefined && b !== undefined) round.push([a, b])
    }
    out.push(round)
    list.splice(1, 0, list.pop() as T)
  }
  return out
}

const quantile = (xs: number[], q: number): number | undefined => {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]
}

const dir = await mkdtemp(join(tmpdir(), 'edgemesh-bench-nat-'))
const key = randomBytes(32).toString('hex')
await writeFile(join(dir, 'psk'), 'edgemesh-ts-bench-psk-not-for-any-real-cluster')
await writeFile(join(dir, 'services.yaml'), '')
for (const relay of ['relay1', 'relay2']) {
  await writeFile(join(dir, `${relay}.yaml`), [
    'kubeAPIConfig:', `  standaloneFile: ${join(dir, 'services.yaml')}`,
    'commonConfig:', `  stateDir: ${join(dir, relay)}`,
    'modules:', '  edgeDNS: {enable: false}', '  edgeProxy: {enable: false}',
    '  edgeTunnel:', '    enable: true', `    psk: {path: ${join(dir, 'psk')}}`,
    '    relayNodes:', '    - {nodeName: relay1, advertiseAddress: [198.18.0.10]}', '    - {nodeName: relay2, advertiseAddress: [198.18.0.11]}', ''
  ].join('\n'))
}
const lab = await Lab.up(natkinds, { id: Lab.newId() })
const results = new Map<string, Array<{ ok: boolean, ms?: number, reason: string }>>()
try {
  // The relays' reflectors answer the NAT checks; the signal server pairs rendezvous connections.
  for (const relay of ['relay1', 'relay2']) {
    await lab.spawn(relay, [process.execPath, entry, 'agent', '--config-file', join(dir, `${relay}.yaml`)], { env: { NAMESPACE: 'kubeedge' }, name: 'agent' }).waitForOutput('"msg":"running"', 20_000)
  }
  await lab.spawn('relay1', [process.execPath, SIGNAL, '--port', '7000'], { name: 'signal' }).waitForOutput('listening', 10_000)
  const schedule = rounds(NODES)
  const started = Date.now()
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    for (const round of schedule) {
      await Promise.all(round.map(async ([a, b], i) => {
        // Alternate who initiates, so both directions count.
        const [init, resp] = attempt % 2 === 0 ? [a, b] : [b, a]
        const session = `${attempt}-${i}-${init.node}`
        const common = ['--signal', '198.18.0.10:7000', '--session', session, '--relays', RELAYS, '--key', key, '--psk', join(dir, 'psk')]
        const responder: LabProcess = lab.spawn(resp.node, [process.execPath, PEER, '--name', resp.node, '--peer', init.node, '--role', 'responder', ...common], { name: `resp-${session}` })
        try {
          // Both start at once; the initiator's clock starts when the signal server has paired it with the ready responder.
          const [r] = await Promise.all([
            lab.exec(init.node, [process.execPath, PEER, '--name', init.node, '--peer', resp.node, '--role', 'initiator', ...common]),
            responder.waitForOutput(/ready/, 15_000)
          ])
          const line = r.stdout.trim().split('\n').pop() ?? ''
          const parsed = line.startsWith('{') ? JSON.parse(line) as { ok: boolean, ms?: number, reason: string, mapped?: string } : { ok: false, reason: `peer.ts failed: ${r.stderr.slice(-300)}` }
          const ready = /^ready \S+ (\{.*\})$/m.exec(await responder.output())?.[1]
          const respMapped = ready === undefined ? undefined : (JSON.parse(ready) as { mapped?: string }).mapped
          for (const [node, mapped] of [[init, parsed.mapped], [resp, respMapped]] as const) {
            if (node.kind === MAPPING_KIND && mapped?.startsWith('none') === true) mappingMisses.push(`attempt ${attempt + 1}, ${init.node}→${resp.node}: ${node.node} ${mapped}`)
          }
          const [first, second] = NODES.indexOf(a) < NODES.indexOf(b) ? [a, b] : [b, a]
          const k = `${first.kind}↔${second.kind}`
          const list = results.get(k) ?? []
          list.push(parsed)
          results.set(k, list)
        } finally {
          await responder.stop({ graceMs: 500 })
        }
      }))
    }
    if (attempt % 10 === 9) console.error(`attempt ${attempt + 1}/${ATTEMPTS} (${((Date.now() - started) / 1000).toFixed(0)} s)`)
  }
  // Every peer removed its mapping on stop: what is left on the upnp router leaked.
  const router = natkinds.sites.find(s => s.nat?.mode === MAPPING_KIND)?.nat?.name
  if (router !== undefined && NODES.some(n => n.kind === MAPPING_KIND)) {
    const rules = await lab.exec(router, ['nft', 'list', 'chain', 'inet', 'miniupnpd', 'prerouting_miniupnpd'])
    leftOnRouter = (rules.stdout.match(/dnat ip to/g) ?? []).length
  }
} finally {
  await lab.down()
  await rm(dir, { recursive: true, force: true })
}

const lines = [
  `bench:nat, ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Linux ${release()}, Node ${process.version}; ${ATTEMPTS} attempts per pair, fresh sockets each`,
  '',
  '| pair | expected | direct at the first attempt | time to direct p50 / p99 (ms) | relayed because |',
  '|---|---|---|---|---|'
]
let punchable = 0
let direct = 0
const allMs: number[] = []
for (const [i, a] of NODES.entries()) {
  for (const b of NODES.slice(i + 1)) {
    const k = `${a.kind}↔${b.kind}`
    const list = results.get(k) ?? []
    // UDP blocked at one side: TCP simultaneous open.
    const expected = !(UNPREDICTABLE.has(a.kind) && UNPREDICTABLE.has(b.kind)) && !(a.kind === 'udp-blocked' && b.kind === 'udp-blocked')
    const ok = list.filter(r => r.ok)
    const ms = ok.map(r => r.ms as number)
    if (expected) { punchable += list.length; direct += ok.length; allMs.push(...ms) }
    const reasons = [...new Set(list.filter(r => !r.ok).map(r => r.reason.replace(/\d+ (ms|sent)/g, 'N $1')))].slice(0, 2).join('; ')
    const p = (q: number): string => quantile(ms, q)?.toFixed(0) ?? '-'
    lines.push(`| ${k} | ${expected ? 'direct' : 'relayed'} | ${ok.length}/${list.length} | ${p(0.5)} / ${p(0.99)} | ${reasons || '-'} |`)
  }
}
lines.push('', `Pairs expected direct: ${direct}/${punchable} attempts direct at the first try (${(100 * direct / Math.max(1, punchable)).toFixed(1)} %); time to direct p50 ${quantile(allMs, 0.5)?.toFixed(0) ?? '-'} ms, p99 ${quantile(allMs, 0.99)?.toFixed(0) ?? '-'} ms.`)
if (leftOnRouter !== undefined) lines.push('', `Mappings left on the upnp router after the run: ${leftOnRouter}.`)
lines.push('', mappingMisses.length === 0 ? 'The upnp node had its router\'s port mapping in every attempt.' : `The upnp node had no port mapping from its router in ${mappingMisses.length} attempts:`, ...mappingMisses.slice(0, 20).map(m => `- ${m}`))
const text = lines.join('\n')
console.log(text)
if (opt.out !== undefined) writeFileSync(opt.out, text + '\n')
