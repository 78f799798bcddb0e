// Many edge nodes against one relay's data path, for bench/tunnel/run.ts.
//
//   sim-nodes.ts park  --psk FILE --relay IP:PORT --nodes 200 --host IP
//     runs one DataPath per simulated node (sim-0 … sim-N-1), each parking
//     its connections on the relay; prints {"parked":N} once all are parked.
//   sim-nodes.ts drive --psk FILE --relay IP:PORT --nodes 200 --target IP:PORT --rate MB/s --seconds S
//     joins every simulated node through the relay, streams `rate` MB/s to
//     each (the target echoes), and measures 64-byte request/response on one
//     more relayed connection meanwhile; prints {"mbps","p50","p99"} (µs).
import { readFileSync } from 'node:fs'
import type { Duplex } from 'node:stream'
import { parseArgs } from 'node:util'
import { Registry } from 'prom-client'
import { DataPath } from '../../src/datapath/datapath.ts'
import { noopLogger } from '../../src/observability/logger.ts'
import { derivePnetKey } from '../../src/mesh/psk.ts'

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    psk: { type: 'string' },
    relay: { type: 'string' },
    nodes: { type: 'string', default: '200' },
    host: { type: 'string', default: '0.0.0.0' },
    target: { type: 'string' },
    rate: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '5' }
  }
})
const key = derivePnetKey(readFileSync(opt.psk as string))
const [relayHost, relayPort] = (opt.relay as string).split(':')
const relay = { nodeName: 'r', address: { host: relayHost as string, port: Number(relayPort) } }
const N = Number(opt.nodes)

async function park (): Promise<void> {
  const paths: DataPath[] = []
  for (let i = 0; i < N; i++) {
    const d = new DataPath({ logger: noopLogger, metrics: new Registry() }, { nodeName: `sim-${i}`, port: 0, listenHost: opt.host, pnetKey: key, isRelay: false })
    await d.start()
    d.setRelays([relay])
    paths.push(d)
  }
  const parked = (): number => paths.reduce((n, d) => n + (d.parkedOn().r ?? 0), 0)
  const started = Date.now()
  while (parked() < 2 * N && Date.now() - started < 30_000) await new Promise(resolve => setTimeout(resolve, 200))
  process.stdout.write(`${JSON.stringify({ parked: parked() })}\n`)
  process.once('SIGTERM', () => { Promise.all(paths.map(async d => { await d.stop() })).finally(() => process.exit(0)) })
}

async function drive (): Promise<void> {
  const [ip, port] = (opt.target as string).split(':')
  const target = { ip: ip as string, port: Number(port) }
  const d = new DataPath({ logger: noopLogger, metrics: new Registry() }, { nodeName: 'driver', port: 0, pnetKey: key, isRelay: false, poolSize: 0 })
  await d.start()
  const route = (i: number): { nodeName: string, direct: never[], relays: Array<typeof relay> } => ({ nodeName: `sim-${i}`, direct: [], relays: [relay] })
  const sockets: Duplex[] = []
  for (let i = 0; i < N; i++) sockets.push((await d.dial(route(i), target)).socket)
  const rr = (await d.dial(route(0), target)).socket
  const seconds = Number(opt.seconds)
  const chunk = Buffer.alloc(Math.round(Number(opt.rate) * 1e6 / 10))
  let received = 0
  for (const s of sockets) s.on('data', (b: Buffer) => { received += b.length })
  const pump = setInterval(() => { for (const s of sockets) if (s.writableLength < 4 * chunk.length) s.write(chunk) }, 100)
  const lat: number[] = []
  const end = Date.now() + seconds * 1000
  const ping = Buffer.alloc(64, 1)
  while (Date.now() < end) {
    const t0 = process.hrtime.bigint()
    await new Promise<void>(resolve => {
      let got = 0
      const on = (b: Buffer): void => { got += b.length; if (got >= 64) { rr.off('data', on); resolve() } }
      rr.on('data', on)
      rr.write(ping)
    })
    lat.push(Number(process.hrtime.bigint() - t0) / 1000)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  clearInterval(pump)
  lat.sort((a, b) => a - b)
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN
  process.stdout.write(`${JSON.stringify({ mbps: received / seconds / 1e6, p50: q(0.5), p99: q(0.99), samples: lat.length })}\n`)
  for (const s of [...sockets, rr]) s.destroy()
  await d.stop()
}

if (positionals[0] === 'park') await park()
else if (positionals[0] === 'drive') await drive()
else throw new Error('usage: sim-nodes.ts park|drive ...')
