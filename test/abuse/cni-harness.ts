// Run by test/abuse/cni.test.ts inside a network namespace of its own (the
// router opens a TUN device there): a node's edge CNI routing plane, and PSK
// holders that abuse its channel. Prints one JSON line of what happened.
import { Registry } from 'prom-client'
import type { Duplex } from 'node:stream'
import { DataPath } from '../../src/datapath/datapath.ts'
import type { PeerRoute } from '../../src/datapath/datapath.ts'
import { PodRouter, CNI_CHANNEL } from '../../src/cni/router.ts'
import { frame, PLAIN_HEADER } from '../../src/cni/frames.ts'
import { noopLogger } from '../../src/observability/logger.ts'

const KEY = new Uint8Array(32).fill(7)
const owners = [{ block: '198.18.1.0/24', nodeName: 'victim' }, { block: '198.18.2.0/24', nodeName: 'peer' }, { block: '198.18.3.0/24', nodeName: 'other' }]

/** A virtio-net header, then an IPv4 header (20 bytes, protocol 253 "experimental") and a payload, from `src` to `dst`. */
function packet (src: string, dst: string, header: Buffer = PLAIN_HEADER): Buffer {
  const p = Buffer.alloc(28)
  p[0] = 0x45
  p.writeUInt16BE(p.length, 2)
  p[8] = 64
  p[9] = 253
  src.split('.').forEach((o, i) => { p[12 + i] = Number(o) })
  dst.split('.').forEach((o, i) => { p[16 + i] = Number(o) })
  return Buffer.concat([header, p])
}

/** Whether the far end closed `socket` within `ms` (data path connections are half-open: its end is what shows). */
async function closed (socket: Duplex, ms = 2000): Promise<boolean> {
  if (socket.destroyed || socket.readableEnded) return true
  return await new Promise(resolve => {
    const t = setTimeout(() => resolve(false), ms)
    const done = (): void => { clearTimeout(t); resolve(true) }
    socket.once('end', done)
    socket.once('close', done)
  })
}

const registry = new Registry()
const victim = new DataPath({ logger: noopLogger, metrics: new Registry() }, { nodeName: 'victim', port: 0, listenHost: '127.0.0.1', pnetKey: KEY, isRelay: false })
await victim.start()
const router = new PodRouter({
  logger: noopLogger,
  metrics: registry,
  channels: { open: async () => undefined, handle: (c, h) => { victim.handleChannel(c, h) } },
  blocks: { owners: () => owners, onChange: () => {} }
}, { nodeName: 'victim' })
await router.start()
const route: PeerRoute = { nodeName: 'victim', direct: [{ host: '127.0.0.1', port: victim.port() }], relays: [] }
const clients: DataPath[] = []
async function channelAs (name: string): Promise<Duplex> {
  const d = new DataPath({ logger: noopLogger, metrics: new Registry() }, { nodeName: name, port: 0, listenHost: '127.0.0.1', pnetKey: KEY, isRelay: false, poolSize: 0 })
  await d.start()
  clients.push(d)
  const { socket } = await d.openChannel(route, CNI_CHANNEL)
  socket.on('error', () => {})
  // Flowing, as the router reads its channels: a paused socket would not see the far end close it.
  socket.resume()
  return socket
}
const value = async (name: string, labels: Record<string, string>): Promise<number> =>
  (await registry.getSingleMetric(name)?.get())?.values.find(v => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0

const result: Record<string, unknown> = {}
// A PSK holder naming itself a node that holds no block.
result.strangerClosed = await closed(await channelAs('mallory'))
// The peer sends a packet from another node's pods, and one to another node's pods.
const peer = await channelAs('peer')
peer.write(frame(packet('198.18.3.9', '198.18.1.9')))
peer.write(frame(packet('198.18.2.9', '198.18.3.9')))
// Offload metadata the device never gives: UDP fragmentation offload, and a checksum to fill in beyond the packet.
const udpOffload = Buffer.from(PLAIN_HEADER)
udpOffload[1] = 3
const checksumBeyond = Buffer.from(PLAIN_HEADER)
checksumBeyond[0] = 1
checksumBeyond.writeUInt16LE(20, 6)
checksumBeyond.writeUInt16LE(16, 8)
peer.write(frame(packet('198.18.2.9', '198.18.1.9', udpOffload)))
peer.write(frame(packet('198.18.2.9', '198.18.1.9', checksumBeyond)))
// And one as it should: from its pods to ours.
peer.write(frame(packet('198.18.2.9', '198.18.1.9')))
await new Promise(resolve => setTimeout(resolve, 300))
result.spoofedDropped = await value('edgemesh_cni_dropped_packets_total', { reason: 'spoofed' })
result.badHeaderDropped = await value('edgemesh_cni_dropped_packets_total', { reason: 'bad_header' })
result.delivered = await value('edgemesh_cni_packets_total', { direction: 'in' })
result.peerStillOpen = !peer.destroyed
// More channels than a peer may hold.
const extra = [await channelAs('peer'), await channelAs('peer'), await channelAs('peer'), await channelAs('peer')]
result.extraClosed = await Promise.all(extra.map(async s => await closed(s, 500)))
// A frame too short for an IPv4 header closes that channel.
peer.write(Buffer.from([0, 0, 0, 3, 1, 2, 3]))
result.shortFrameClosed = await closed(peer)
result.refusedNoBlock = await value('edgemesh_cni_refused_channels_total', { reason: 'no_block' })
result.refusedTooMany = await value('edgemesh_cni_refused_channels_total', { reason: 'too_many' })
for (const s of extra) s.destroy()
await router.stop()
for (const d of [...clients, victim]) await d.stop()
process.stdout.write(JSON.stringify(result) + '\n')
