/**
 * The edge CNI's routing plane: pod-IP packets between nodes. The kernel
 * routes every other node's pod block to a TUN device (`edge_tun0`); each
 * packet read from it goes, by its destination, to the node that holds that
 * block, framed on a data path channel (`cni`) to that node's agent: direct,
 * or spliced by a relay across NAT, encrypted either way. The receiving agent
 * writes it to its own device, and its kernel delivers it to the pod.
 *
 * Which node holds which block comes from the block claims (Leases), kept in
 * memory: no API call per packet (upstream lists pods for every packet).
 * A packet is accepted from a peer only from an address of that peer's
 * blocks and to an address of this node's: no peer can inject traffic for
 * another node's pods or spoof another node's.
 */
import type { Duplex } from 'node:stream'
import { readFile, writeFile } from 'node:fs/promises'
import type { Registry } from 'prom-client'
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { PeerChannels } from '../mesh/index.ts'
import { parseSubnet } from './config.ts'
import { prefixMask } from '../net/ipv4.ts'
import { FrameReader, frame, MIN_PACKET } from './frames.ts'
import { Netlink } from './netlink.ts'
import type { IpRunner } from './netlink.ts'
import { TunDevice } from './tun.ts'
import { CniMetrics } from './metrics.ts'

/** The data path channel the packets travel on. */
export const CNI_CHANNEL = 'cni'
/** Upstream's name for the device. */
export const TUN_NAME = 'edge_tun0'
/** Bytes queued on a peer's channel beyond which new packets are dropped (as a full NIC queue drops them). */
const MAX_QUEUED_BYTES = 1 << 20
/** Packets held while a peer's channel opens. */
const MAX_PENDING = 256
/** After a failed open, packets to that peer are dropped for this long before the next try. */
const REOPEN_AFTER_MS = 1000
const OPEN_TIMEOUT_MS = 10_000
/** Channels one peer may hold open to this node at once (each side opens one; a restart briefly makes more). */
const MAX_CHANNELS_PER_PEER = 4

/** Which node holds each pod block, as the claims say. */
export interface BlockTable {
  owners: () => ReadonlyArray<{ block: string, nodeName: string }>
  /** Called after every change of the table. */
  onChange: (listener: () => void) => void
}

export interface PeerTraffic {
  nodeName: string
  packetsOut: number
  bytesOut: number
  packetsIn: number
  bytesIn: number
  dropped: number
  /** open, opening, or why the last open failed. */
  channel: string
}

interface Link {
  traffic: PeerTraffic
  /** The socket packets to the peer are written on: ours, or one the peer opened. */
  sending: Duplex | undefined
  sockets: Set<Duplex>
  opening: boolean
  pending: Buffer[]
  failedAt: number
}

interface Route { network: number, mask: number, nodeName: string }

export class PodRouter implements Component {
  readonly name = 'cni-routing'
  readonly #log: Logger
  readonly #channels: PeerChannels
  readonly #table: BlockTable
  readonly #netlink: Netlink
  readonly #metrics: CniMetrics
  readonly #init: { nodeName: string, device: string, mtu: number }
  #tun: TunDevice | undefined
  #reading: Promise<void> | undefined
  /** Routes by prefix length, longest first: each a map from the masked network to its node. */
  #routes: Array<{ mask: number, byNetwork: Map<number, Route> }> = []
  #installed = new Set<string>()
  #reconciling: Promise<void> = Promise.resolve()
  #reconcileSoon: NodeJS.Immediate | undefined
  readonly #links = new Map<string, Link>()
  #started = false

  constructor (deps: { logger: Logger, metrics: Registry, channels: PeerChannels, blocks: BlockTable, ip?: IpRunner }, init: { nodeName: string, device?: string, mtu?: number }) {
    this.#log = deps.logger
    this.#channels = deps.channels
    this.#table = deps.blocks
    this.#netlink = new Netlink(deps.ip)
    this.#metrics = new CniMetrics(deps.metrics)
    this.#init = { device: TUN_NAME, mtu: 1500, ...init }
    // A list of 10k claims arrives as 10k events: one rebuild after them.
    this.#table.onChange(() => { this.#reconcileSoon ??= setImmediate(() => { this.#reconcileSoon = undefined; this.#reconcile() }) })
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    try {
      await this.#up()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async #up (): Promise<void> {
    const { device, mtu } = this.#init
    // Another process holding the name (a second agent, upstream's) makes this fail, naming it.
    const tun = await TunDevice.open(device)
    this.#tun = tun
    // No IPv6 on the device: the kernel would send router solicitations into it.
    await writeFile(`/proc/sys/net/ipv6/conf/${device}/disable_ipv6`, '1').catch(() => {})
    await this.#netlink.ip(['link', 'set', device, 'mtu', String(mtu), 'up'])
    await this.#enableForwarding()
    this.#reading = new Promise(resolve => {
      tun.readLoop(packet => { this.#fromDevice(packet) }, err => {
        if (err !== undefined && this.#started) this.#log.error('edge CNI device read failed; pod traffic to other nodes stops', { device, err })
        resolve()
      })
    })
    this.#channels.handle(CNI_CHANNEL, (peer, socket) => { this.#accept(peer, socket) })
    this.#reconcile()
    await this.#reconciling
    this.#log.info('edge CNI routing plane up', { device, mtu, routes: this.#installed.size })
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    clearImmediate(this.#reconcileSoon)
    this.#reconcileSoon = undefined
    for (const link of this.#links.values()) for (const s of link.sockets) s.destroy()
    this.#links.clear()
    await this.#reconciling
    if (this.#tun !== undefined) {
      // Deleting the link takes its routes with it and ends the reading.
      await this.#netlink.ip(['link', 'del', this.#init.device], /Cannot find device|does not exist/).catch(() => {})
      await Promise.race([this.#reading, new Promise(resolve => setTimeout(resolve, 2000).unref())])
    }
    await this.#tun?.close()
    this.#tun = undefined
    this.#installed.clear()
  }

  /** Per peer: packets and bytes each way, drops and the channel's state. */
  peers (): PeerTraffic[] {
    return [...this.#links.values()].map(l => ({ ...l.traffic }))
  }

  /** The blocks routed to the device, for status and doctor. */
  routes (): string[] {
    return [...this.#installed].sort()
  }

  async #enableForwarding (): Promise<void> {
    const file = '/proc/sys/net/ipv4/ip_forward'
    if ((await readFile(file, 'utf8').catch(() => '1')).trim() === '1') return
    await writeFile(file, '1')
    this.#log.info('IPv4 forwarding turned on: pods on this node and other nodes reach each other through it', { file })
  }

  /** Brings the lookup table and the kernel's routes in line with the claims. */
  #reconcile (): void {
    if (!this.#started) return
    const owners = this.#table.owners()
    const byMask = new Map<number, Map<number, Route>>()
    const remote = new Set<string>()
    for (const { block, nodeName } of owners) {
      let subnet
      try { subnet = parseSubnet(block, 'pod block') } catch { continue }
      const mask = prefixMask(subnet.prefix)
      let m = byMask.get(mask)
      if (m === undefined) { m = new Map(); byMask.set(mask, m) }
      m.set(subnet.network, { network: subnet.network, mask, nodeName })
      if (nodeName !== this.#init.nodeName) remote.add(subnet.cidr)
    }
    this.#routes = [...byMask].sort((a, b) => b[0] - a[0]).map(([mask, byNetwork]) => ({ mask, byNetwork }))
    const next = this.#reconciling.then(async () => {
      if (!this.#started) return
      const { device } = this.#init
      for (const block of remote) {
        if (this.#installed.has(block)) continue
        await this.#netlink.ip(['route', 'replace', block, 'dev', device])
        this.#installed.add(block)
      }
      for (const block of this.#installed) {
        if (remote.has(block)) continue
        await this.#netlink.ip(['route', 'del', block, 'dev', device], /No such process|Cannot find device/)
        this.#installed.delete(block)
      }
    }).catch((err: unknown) => { this.#log.error('edge CNI routes not set', { err }) })
    this.#reconciling = next
  }

  #ownerOf (address: number): string | undefined {
    for (const { mask, byNetwork } of this.#routes) {
      const r = byNetwork.get((address & mask) >>> 0)
      if (r !== undefined) return r.nodeName
    }
    return undefined
  }

  #link (nodeName: string): Link {
    let link = this.#links.get(nodeName)
    if (link === undefined) {
      link = {
        traffic: { nodeName, packetsOut: 0, bytesOut: 0, packetsIn: 0, bytesIn: 0, dropped: 0, channel: 'closed' },
        sending: undefined,
        sockets: new Set(),
        opening: false,
        pending: [],
        failedAt: 0
      }
      this.#links.set(nodeName, link)
    }
    return link
  }

  /** A packet the kernel routed to the device: to the node holding its destination. */
  #fromDevice (packet: Buffer): void {
    if (packet.byteLength < MIN_PACKET || (packet[0] as number) >> 4 !== 4) { this.#metrics.dropped.inc({ reason: 'not_ipv4' }); return }
    const owner = this.#ownerOf(packet.readUInt32BE(16))
    if (owner === undefined || owner === this.#init.nodeName) { this.#metrics.dropped.inc({ reason: 'no_route' }); return }
    const link = this.#link(owner)
    const socket = link.sending
    if (socket !== undefined) { this.#send(link, socket, packet); return }
    if (Date.now() - link.failedAt < REOPEN_AFTER_MS) { this.#drop(link, 'unreachable'); return }
    if (link.pending.length >= MAX_PENDING) { this.#drop(link, 'queue_full'); return }
    link.pending.push(packet)
    if (!link.opening) this.#open(owner, link)
  }

  #send (link: Link, socket: Duplex, packet: Buffer): void {
    if (socket.writableLength > MAX_QUEUED_BYTES) { this.#drop(link, 'queue_full'); return }
    // Packets read in one turn of the event loop leave as one write (one TLS record, one syscall).
    if (!socket.writableCorked) {
      socket.cork()
      process.nextTick(() => { socket.uncork() })
    }
    socket.write(frame(packet))
    link.traffic.packetsOut++
    link.traffic.bytesOut += packet.byteLength
    this.#metrics.packets.inc({ direction: 'out' })
    this.#metrics.bytes.inc({ direction: 'out' }, packet.byteLength)
  }

  #drop (link: Link, reason: string): void {
    link.traffic.dropped++
    this.#metrics.dropped.inc({ reason })
  }

  #open (nodeName: string, link: Link): void {
    link.opening = true
    link.traffic.channel = 'opening'
    this.#channels.open(nodeName, CNI_CHANNEL, AbortSignal.timeout(OPEN_TIMEOUT_MS)).then(socket => {
      if (socket === undefined) throw new Error('the node has no data path (a Go EdgeMesh agent: its edge CNI is not served yet)')
      link.opening = false
      if (!this.#started) { socket.destroy(); return }
      this.#attach(nodeName, socket)
    }).catch((err: Error) => {
      link.opening = false
      link.failedAt = Date.now()
      link.traffic.channel = `failed: ${err.message}`
      link.traffic.dropped += link.pending.length
      this.#metrics.dropped.inc({ reason: 'unreachable' }, link.pending.length)
      link.pending = []
      this.#log.warn('edge CNI: no channel to a node; its pods are unreachable for now', { node: nodeName, err: err.message })
    })
  }

  /**
   * A channel a peer opened. Only a node that holds a block has pods to send
   * from; a PSK holder naming itself anything else gets nothing, and no node
   * gets more than a few channels.
   */
  #accept (peer: string, socket: Duplex): void {
    const holdsBlock = this.#table.owners().some(o => o.nodeName === peer)
    if (!holdsBlock || peer === this.#init.nodeName || (this.#links.get(peer)?.sockets.size ?? 0) >= MAX_CHANNELS_PER_PEER) {
      this.#metrics.refused.inc({ reason: holdsBlock ? 'too_many' : 'no_block' })
      socket.destroy()
      return
    }
    this.#attach(peer, socket)
  }

  /** A channel to `peer` (ours or its own): read for packets, and written to when there is none yet. */
  #attach (peer: string, socket: Duplex): void {
    if (!this.#started) { socket.destroy(); return }
    const link = this.#link(peer)
    link.sockets.add(socket)
    if (link.sending === undefined) {
      link.sending = socket
      link.traffic.channel = 'open'
      const pending = link.pending
      link.pending = []
      for (const p of pending) this.#send(link, socket, p)
    }
    const reader = new FrameReader()
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, packet => { this.#fromPeer(peer, link, packet) })
      } catch (err) {
        this.#log.warn('edge CNI: bad frame from a node; channel closed', { node: peer, err: (err as Error).message })
        socket.destroy()
      }
    })
    socket.on('error', () => {})
    // Data path connections allow half-open ones; a channel whose far end ended is done both ways.
    socket.once('end', () => socket.destroy())
    socket.once('close', () => {
      link.sockets.delete(socket)
      if (link.sending !== socket) return
      link.sending = link.sockets.values().next().value
      link.traffic.channel = link.sending !== undefined ? 'open' : 'closed'
    })
  }

  /** A packet from `peer`'s channel: written to the device if it is from that peer's pods to ours. */
  #fromPeer (peer: string, link: Link, packet: Buffer): void {
    if ((packet[0] as number) >> 4 !== 4) { this.#drop(link, 'not_ipv4'); return }
    if (this.#ownerOf(packet.readUInt32BE(12)) !== peer || this.#ownerOf(packet.readUInt32BE(16)) !== this.#init.nodeName) {
      this.#drop(link, 'spoofed')
      return
    }
    if (this.#tun?.write(packet) !== true) { this.#drop(link, 'device'); return }
    link.traffic.packetsIn++
    link.traffic.bytesIn += packet.byteLength
    this.#metrics.packets.inc({ direction: 'in' })
    this.#metrics.bytes.inc({ direction: 'in' }, packet.byteLength)
  }
}
