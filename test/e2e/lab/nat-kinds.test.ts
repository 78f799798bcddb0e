// The NAT kinds of the lab, observed from outside as a user of the lab sees
// them (RFC 4787): which public address:port relay1 and relay2 see for one
// local port (mapping), and which unsolicited packets get back to the node
// once it has sent to relay1 (filtering). One lab (`natkinds`: one single-node
// site per kind) for every case; the node and relay programs are tiny
// node:dgram scripts.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Lab, TopologyError, natRuleset, natkinds, validateTopology } from '../../lab/index.ts'
import type { LabProcess, NatMode, Topology } from '../../lab/index.ts'
import { rootOnly } from './helpers.ts'

/** Local port of the mapping probe (sent to relay1, then relay2). */
const MAP_PORT = 41000
/** Local port of the filtering probe (sent to relay1 only). */
const FILTER_PORT = 41001

/**
 * Relay: UDP 3478 answers `map` and `filter` with the address:port it saw.
 * After a `filter` it sends (a) from its port 3479 to that address:port and
 * asks its peer relay to send (b) from the peer's 3478; when the peer says it
 * did, it sends `done` from 3478 (the path every NAT lets back in). Logs every
 * message it receives, so a test can tell whether a node's packets arrived.
 * argv: own name, peer relay address.
 */
const RELAY = `
import { createSocket } from 'node:dgram'
const [name, peer] = process.argv.slice(2)
const main = createSocket('udp4')
const other = createSocket('udp4')
const pending = new Map()
const send = (sock, msg, to, cb) => { const [a, p] = to.split(':'); sock.send(JSON.stringify(msg), Number(p), a, cb) }
main.on('message', (buf, r) => {
  const from = r.address + ':' + r.port
  let m
  try { m = JSON.parse(String(buf)) } catch { return }
  process.stdout.write(JSON.stringify({ got: m, from }) + '\\n')
  if (m.t === 'map') send(main, { t: 'mapped', by: name, seen: from }, from)
  else if (m.t === 'filter') {
    send(main, { t: 'mapped', by: name, seen: from }, from)
    send(other, { t: 'inbound', via: name + ':3479' }, from)
    pending.set(m.id, from)
    send(main, { t: 'poke', id: m.id, to: from }, peer + ':3478')
  } else if (m.t === 'poke') {
    send(main, { t: 'inbound', via: name + ':3478' }, m.to, () => send(main, { t: 'poked', id: m.id }, from))
  } else if (m.t === 'poked') {
    const to = pending.get(m.id)
    pending.delete(m.id)
    if (to !== undefined) setTimeout(() => send(main, { t: 'done' }, to), 50)
  }
})
let bound = 0
const ready = () => { if (++bound === 2) process.stdout.write('listening\\n') }
main.bind(3478, ready)
other.bind(3479, ready)
const stop = () => { main.close(); other.close(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
`

/**
 * Node: from MAP_PORT, asks relay1 then relay2 what they see (retrying up to
 * three times each); then from FILTER_PORT sends one `filter` to relay1 and
 * collects what comes back until relay1's `done` (plus 100 ms) or 2 s.
 * Prints JSON. argv: id, relay1 address, relay2 address, map port, filter port.
 */
const CLIENT = `
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
const [id, relay1, relay2, mapPort, filterPort] = process.argv.slice(2)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
async function open (port) {
  const sock = createSocket('udp4')
  const inbox = []
  sock.on('message', (buf, r) => {
    try { inbox.push({ msg: JSON.parse(String(buf)), from: r.address + ':' + r.port }) } catch {}
  })
  sock.bind(Number(port))
  await once(sock, 'listening')
  return { sock, inbox }
}
async function until (cond, ms) {
  const end = Date.now() + ms
  while (!cond() && Date.now() < end) await sleep(10)
  return cond()
}
const a = await open(mapPort)
const mapped = {}
for (const [name, addr] of [['relay1', relay1], ['relay2', relay2]]) {
  for (let i = 0; i < 3 && mapped[name] === undefined; i++) {
    a.sock.send(JSON.stringify({ t: 'map', id }), 3478, addr)
    await until(() => a.inbox.some(x => x.msg.by === name), 300)
    mapped[name] = a.inbox.find(x => x.msg.by === name)?.msg.seen
  }
}
a.sock.close()
const b = await open(filterPort)
b.sock.send(JSON.stringify({ t: 'filter', id }), 3478, relay1)
const done = await until(() => b.inbox.some(x => x.msg.t === 'done'), 2000)
if (done) await sleep(100)
b.sock.close()
const filterMapped = b.inbox.find(x => x.msg.t === 'mapped')?.msg.seen
const inbound = b.inbox.filter(x => x.msg.t === 'inbound').map(x => ({ via: x.msg.via, from: x.from }))
process.stdout.write(JSON.stringify({ mapped, filter: { mapped: filterMapped, inbound, done } }) + '\\n')
`

interface ClientResult {
  /** What relay1 and relay2 saw for MAP_PORT (absent: no reply). */
  mapped: { relay1?: string, relay2?: string }
  filter: {
    /** What relay1 saw for FILTER_PORT. */
    mapped?: string
    /** Unsolicited packets that reached FILTER_PORT: which relay port sent them, and from where the node saw them. */
    inbound: Array<{ via: string, from: string }>
    /** relay1 finished sending (a) and (b) and its `done` came back. */
    done: boolean
  }
}

/** The node of each kind in `natkinds`, and what gets back in after it sent to relay1:3478. */
const kinds: Array<{ mode: NatMode, node: string, router: string, admits: Array<'relay1:3479' | 'relay2:3478'> }> = [
  { mode: 'full-cone', node: 'fc1', router: 'nat-fc', admits: ['relay1:3479', 'relay2:3478'] },
  { mode: 'address-restricted', node: 'ar1', router: 'nat-ar', admits: ['relay1:3479'] },
  { mode: 'port-restricted', node: 'pr1', router: 'nat-pr', admits: [] },
  { mode: 'symmetric', node: 'sym1', router: 'nat-sym', admits: [] },
  { mode: 'symmetric-port-preserving', node: 'spp1', router: 'nat-spp', admits: [] },
  { mode: 'udp-blocked', node: 'ub1', router: 'nat-ub', admits: [] },
  // Symmetric until the node asks miniupnpd for a mapping (tested below).
  { mode: 'upnp', node: 'upnp1', router: 'nat-upnp', admits: [] }
]

describe('NAT kinds: topology and rules', () => {
  test('natkinds is valid and has one single-node site per kind', () => {
    validateTopology(natkinds)
    const sites = natkinds.sites.filter(s => s.nat !== undefined)
    assert.deepEqual(sites.map(s => [s.nat?.mode, s.nat?.name, s.nodes.map(n => n.name)]), kinds.map(k => [k.mode, k.router, [k.node]]))
  })

  test('port-restricted and symmetric are the rules of masquerade and fully-random', () => {
    assert.equal(natRuleset('port-restricted'), natRuleset('masquerade'))
    assert.equal(natRuleset('symmetric'), natRuleset('fully-random'))
    assert.match(natRuleset('udp-blocked'), /iifname "lan0" oifname "wan0" meta l4proto udp drop/)
    assert.match(natRuleset('full-cone', { publicAddress: '198.18.0.1', nodeAddress: '10.2.1.11' }), /ip daddr 198\.18\.0\.1 udp dport @cone_ports dnat to 10\.2\.1\.11/)
    assert.throws(() => natRuleset('address-restricted'), /needs publicAddress and nodeAddress/)
  })

  test('a full-cone or address-restricted site with two nodes is refused', () => {
    for (const mode of ['full-cone', 'address-restricted'] as const) {
      const t: Topology = structuredClone(natkinds)
      const site = t.sites.find(s => s.nat?.mode === mode)
      assert.ok(site?.subnet !== undefined)
      site.nodes.push({ name: 'second', address: site.subnet.replace(/0\/24$/, '12') })
      assert.throws(() => validateTopology(t), (err: Error) => err instanceof TopologyError && new RegExp(`${mode} router forwards inbound UDP to one node.*exactly one node \\(has 2\\)`).test(err.message))
    }
    const t: Topology = structuredClone(natkinds)
    ;(t.sites[1]!.nat as { mode: string }).mode = 'cone'
    assert.throws(() => validateTopology(t), /mode "cone" must be one of masquerade, fully-random, full-cone/)
  })
})

describe('NAT kinds in the natkinds lab', rootOnly, () => {
  let lab: Lab | undefined
  let dir: string | undefined
  const relays: LabProcess[] = []
  const results = new Map<string, ClientResult>()

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'eml-natkinds-'))
    await writeFile(join(dir, 'relay.mjs'), RELAY)
    await writeFile(join(dir, 'client.mjs'), CLIENT)
    const l = lab = await Lab.up(natkinds, { id: Lab.newId() })
    const relay1 = l.address('relay1')
    const relay2 = l.address('relay2')
    relays.push(
      l.spawn('relay1', [process.execPath, join(dir, 'relay.mjs'), 'relay1', relay2], { name: 'relay' }),
      l.spawn('relay2', [process.execPath, join(dir, 'relay.mjs'), 'relay2', relay1], { name: 'relay' })
    )
    await Promise.all(relays.map(p => p.waitForOutput('listening')))
    const client = join(dir, 'client.mjs')
    await Promise.all(kinds.map(async k => {
      const r = await l.exec(k.node, [process.execPath, client, k.node, relay1, relay2, String(MAP_PORT), String(FILTER_PORT)], { timeoutMs: 15_000 })
      assert.equal(r.code, 0, `client on ${k.node}: ${r.stderr}`)
      results.set(k.node, JSON.parse(r.stdout) as ClientResult)
    }))
  })

  after(async () => {
    try {
      await Promise.all(relays.map(p => p.stop({ graceMs: 1000 })))
      await lab?.down()
    } finally {
      if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    }
  })

  const result = (node: string): ClientResult => {
    const r = results.get(node)
    assert.ok(r !== undefined, `no result from ${node}`)
    return r
  }
  const pub = (router: string): string => (lab as Lab).address(router)
  const port = (seen: string | undefined): number => Number(seen?.split(':')[1])
  /** What reached the node's filtering port: (a) relay1 from 3479, (b) relay2; with the source the node saw. */
  const admitted = (node: string, r: ClientResult): string[] => {
    const expectFrom: Record<string, string> = { 'relay1:3479': `${lab?.address('relay1')}:3479`, 'relay2:3478': `${lab?.address('relay2')}:3478` }
    for (const x of r.filter.inbound) assert.equal(x.from, expectFrom[x.via], `${node}: ${JSON.stringify(x)}`)
    return [...new Set(r.filter.inbound.map(x => x.via))].sort()
  }

  for (const k of kinds.filter(k => k.mode !== 'udp-blocked')) {
    test(`${k.mode}: filtering admits ${k.admits.length === 0 ? 'only replies' : k.admits.join(' and ')} after the node sent to relay1:3478`, (t) => {
      const r = result(k.node)
      t.diagnostic(`${k.node}: ${JSON.stringify(r)}`)
      assert.equal(r.filter.done, true, `relay1's done never came back: ${JSON.stringify(r)}`)
      assert.ok(r.filter.mapped?.startsWith(`${pub(k.router)}:`), JSON.stringify(r))
      assert.deepEqual(admitted(k.node, r), k.admits, JSON.stringify(r))
    })
  }

  for (const k of kinds.filter(k => ['full-cone', 'address-restricted', 'port-restricted'].includes(k.mode))) {
    test(`${k.mode}: endpoint-independent mapping keeping the port: both relays see the local port`, () => {
      const r = result(k.node)
      const seen = `${pub(k.router)}:${MAP_PORT}`
      assert.deepEqual(r.mapped, { relay1: seen, relay2: seen })
      assert.equal(r.filter.mapped, `${pub(k.router)}:${FILTER_PORT}`)
    })
  }

  test('symmetric: a different random public port per destination', (t) => {
    const r = result('sym1')
    t.diagnostic(JSON.stringify(r.mapped))
    assert.ok(r.mapped.relay1?.startsWith(`${pub('nat-sym')}:`) && r.mapped.relay2?.startsWith(`${pub('nat-sym')}:`), JSON.stringify(r))
    assert.notEqual(port(r.mapped.relay1), port(r.mapped.relay2), JSON.stringify(r))
  })

  test('symmetric-port-preserving: the first destination sees the local port, the second another port', (t) => {
    const r = result('spp1')
    t.diagnostic(JSON.stringify(r.mapped))
    assert.equal(r.mapped.relay1, `${pub('nat-spp')}:${MAP_PORT}`)
    assert.ok(r.mapped.relay2?.startsWith(`${pub('nat-spp')}:`), JSON.stringify(r))
    assert.notEqual(port(r.mapped.relay2), MAP_PORT, JSON.stringify(r))
    // A fresh local port's first destination keeps it too.
    assert.equal(r.filter.mapped, `${pub('nat-spp')}:${FILTER_PORT}`)
  })

  test('upnp: the agent\'s port mapper gets a port over NAT-PMP, anyone reaches the node there, and after stop nobody does', async () => {
    const l = lab as Lab
    const script = join(dir as string, 'upnp.ts')
    await writeFile(script, [
      `import { PortMapper } from '${join(process.cwd(), 'src/nat/port-mapping.ts')}'`,
      `import { noopLogger } from '${join(process.cwd(), 'src/observability/logger.ts')}'`,
      "import dgram from 'node:dgram'",
      "const sock = dgram.createSocket('udp4')",
      'await new Promise(resolve => sock.bind(45000, resolve))',
      'const mapper = new PortMapper({ logger: noopLogger })',
      // The first datagram removes the mapping.
      "sock.on('message', async (m, r) => { process.stdout.write('got ' + m + ' from ' + r.address + '\\n'); if (String(m) === 'hello') { await mapper.stop(); process.stdout.write('unmapped\\n') } })",
      'const m = await mapper.map(45000)',
      "process.stdout.write('mapped ' + m?.protocol + ' ' + m?.port + '\\n')",
      'setInterval(() => {}, 1000)'
    ].join('\n'))
    const node = l.spawn('upnp1', [process.execPath, script], { name: 'upnp-client' })
    const mapped = await node.waitForOutput(/mapped NAT-PMP (\d+)/, 10_000)
    const externalPort = Number(/mapped NAT-PMP (\d+)/.exec(mapped)?.[1])
    const send = async (text: string): Promise<void> => {
      const r = await l.exec('relay2', [process.execPath, '-e', `const s = require('node:dgram').createSocket('udp4'); s.send('${text}', ${externalPort}, '${pub('nat-upnp')}', () => s.close())`])
      assert.equal(r.code, 0, r.stderr)
    }
    await send('hello')
    await node.waitForOutput(`got hello from ${l.address('relay2')}`, 3000)
    await node.waitForOutput('unmapped', 3000)
    await send('again')
    await sleep(500)
    assert.doesNotMatch(await node.output(), /got again/, (await l.exec('nat-upnp', ['nft', 'list', 'table', 'inet', 'miniupnpd'])).stdout)
    await node.stop({ graceMs: 500 })
  })

  test('udp-blocked: no reply, and the relays never see a packet of the node', async () => {
    const r = result('ub1')
    assert.deepEqual(r.mapped, {})
    assert.equal(r.filter.mapped, undefined)
    assert.deepEqual(r.filter.inbound, [])
    assert.equal(r.filter.done, false)
    for (const p of relays) {
      const log = await p.output()
      assert.doesNotMatch(log, /"id":"ub1"/, `${p.node} saw ub1's packets`)
      // The same relays did hear the other nodes: the log is the right one.
      assert.match(log, p.node === 'relay1' ? /"id":"fc1"/ : /"t":"map","id":"fc1"/)
    }
  })
})
