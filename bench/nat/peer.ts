// One side of one punching attempt in bench/nat, run inside a lab node: the
// agent's own NAT checks (against the relays' reflectors) and DirectPaths, on
// a fresh socket (so a fresh mapping on the node's NAT), with the rendezvous
// over a TCP connection the bench's signal server (signal.ts, on a relay)
// pairs with the peer's. That stands in for the data path's relayed
// `nat-punch` channel, which needs the whole agent.
//
//   peer.ts --name A --peer B --role initiator|responder --signal IP:PORT --session ID
//           --relays relay1=IP:PORT,relay2=IP:PORT --key HEX --psk FILE [--timeout 15000]
//
// Where UDP is blocked, the pair punches TCP: the relays (their data path,
// MACed with the cluster PSK in FILE) tell each side its public TCP endpoint.
//
// The initiator prints one JSON line: { ok, ms, reason, kind, mapped } (`ms`
// from asking for a direct path to the path proven both ways, then a ping
// echoed over a stream on it; both sides have done their NAT checks and asked
// their routers for a port mapping before; `mapped` is the router's answer).
// The responder prints `ready <kind> {"mapped":...}` and echoes streams until
// it is stopped.
import { connect } from 'node:net'
import { readPnetKey } from '../../src/mesh/psk.ts'
import { DataPathMetrics } from '../../src/datapath/metrics.ts'
import { Parking, relayRequest } from '../../src/datapath/parking.ts'
import { DataPathKeys } from '../../src/datapath/wire.ts'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { parseArgs } from 'node:util'
import { Registry } from 'prom-client'
import { DirectPathMetrics, DirectPaths, NatDiscovery, NatMetrics } from '../../src/nat/index.ts'
import type { NatReport } from '../../src/nat/index.ts'
import { noopLogger } from '../../src/observability/logger.ts'
import type { Logger } from '../../src/observability/logger.ts'

const { values: opt } = parseArgs({
  options: {
    name: { type: 'string' },
    peer: { type: 'string' },
    role: { type: 'string' },
    signal: { type: 'string' },
    session: { type: 'string' },
    relays: { type: 'string' },
    key: { type: 'string' },
    psk: { type: 'string' },
    timeout: { type: 'string', default: '15000' }
  }
})
const name = opt.name as string
const peer = opt.peer as string
const initiator = opt.role === 'initiator'
const [signalHost, signalPort] = (opt.signal as string).split(':') as [string, string]
const relays = (opt.relays as string).split(',').map(r => {
  const [nodeName, hostPort] = r.split('=') as [string, string]
  const [host, port] = hostPort.split(':') as [string, string]
  return { nodeName, addresses: [{ host, port: Number(port) }] }
})

// The data path's own relay client, without parking: `reflect` as the agent asks it.
const keys = new DataPathKeys(await readPnetKey(opt.psk as string))
const parking = new Parking({ logger: noopLogger, metrics: new DataPathMetrics(new Registry()), request: async (raw, request) => await relayRequest(raw, keys, request), handOver: socket => { socket.destroy() } }, { nodeName: name })
parking.setRelays(relays.map(r => ({ nodeName: r.nodeName, address: r.addresses[0] as { host: string, port: number } })))

/** This node's NAT, once checked (DirectPaths asks for it). */
const nat: { report?: NatReport } = {}
let channelHandler: ((peer: string, socket: Duplex) => void) | undefined
let signal: Promise<Socket> | undefined

/** The signal connection, once the server has paired it with the peer's: the rendezvous channel. */
async function rendezvous (): Promise<Socket> {
  signal ??= new Promise<Socket>((resolve, reject) => {
    const s = connect({ host: signalHost, port: Number(signalPort) }, () => { s.write(`${opt.session as string} ${initiator ? 'i' : 'r'}\n`) })
    s.once('error', reject)
    let got = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk])
      const at = got.indexOf('\n')
      if (at < 0) return
      s.off('data', onData)
      s.pause()
      if (got.length > at + 1) s.unshift(got.subarray(at + 1))
      resolve(s)
    }
    s.on('data', onData)
  })
  return await signal
}

/** Why the router gave no port mapping, as the port mapper logs it (printed with the result). */
const mapperSaid: string[] = []
const mapperLog: Logger = {
  ...noopLogger,
  debug: (msg, fields) => { if (msg.includes('port mapping')) mapperSaid.push(`${msg} ${JSON.stringify(fields ?? {})}`) },
  forComponent: () => mapperLog
}

const paths = new DirectPaths({
  logger: mapperLog,
  metrics: new DirectPathMetrics(new Registry()),
  nat: () => nat.report,
  rendezvous: {
    openChannel: async () => await rendezvous(),
    handleChannel: (_channel, handler) => { channelHandler = handler },
    // The initiator resets its stream when it exits: an unhandled reset would kill the
    // responder before its stop removed the router's mapping (miniupnpd then kept every
    // one of them, and answered more slowly with each).
    serve: stream => { stream.on('error', () => {}); stream.pipe(stream) },
    reflect: async (localPort, signal) => await parking.reflect(localPort, 1000, signal)
  }
}, { nodeName: name, pnetKey: Buffer.from(opt.key as string, 'hex'), host: '0.0.0.0', portMapping: true })
await paths.start()
const discovery = new NatDiscovery({ logger: noopLogger, metrics: new NatMetrics(new Registry()) }, { relays, datagrams: () => paths.datagrams() })
const report = await discovery.check()
nat.report = report
// The router's port mapping, as an agent asks for it after its NAT check (start-up, not the punch's time).
await paths.mapPort()
/** The router's mapping as the punch starts: `-` where none, with the mapper's reasons. */
const mapped = paths.portMapping()?.protocol ?? (report.kind === 'cone' || report.kind === 'symmetric' ? `none (${mapperSaid.join('; ') || 'no answer logged'})` : '-')

if (!initiator) {
  const channel = rendezvous()
  process.stdout.write(`ready ${report.kind} ${JSON.stringify({ mapped })}\n`)
  channelHandler?.(peer, await channel)
  // Echoes streams until stopped.
  process.on('SIGTERM', () => { paths.stop().finally(() => process.exit(0)) })
} else {
  // Paired with the responder once it is ready: both start at once, and the clock starts here.
  await rendezvous()
  const t0 = performance.now()
  paths.want(peer)
  const deadline = t0 + Number(opt.timeout)
  let reason = ''
  while (performance.now() < deadline) {
    if (paths.has(peer)) break
    const s = paths.status().find(x => x.nodeName === peer)
    if (s?.path === 'relayed') { reason = s.reason ?? ''; break }
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  let ok = false
  let ms: number | undefined
  if (paths.has(peer)) {
    try {
      const stream = await paths.open(peer)
      const echoed = await new Promise<string>((resolve, reject) => {
        let got = ''
        stream.on('data', (d: Buffer) => { got += d.toString(); if (got === 'ping') resolve(got) })
        stream.on('error', reject)
        setTimeout(() => reject(new Error('no echo within 3 s')), 3000).unref()
        stream.write('ping')
      })
      ok = echoed === 'ping'
      ms = performance.now() - t0
      stream.destroy()
    } catch (err) {
      reason = `stream: ${(err as Error).message}`
    }
  } else if (reason === '') reason = `no path within ${opt.timeout as string} ms`
  process.stdout.write(`${JSON.stringify({ ok, ms, reason, kind: report.kind, mapped })}\n`)
  await paths.stop()
  process.exit(0)
}
