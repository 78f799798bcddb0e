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
import { cidrWithin, numberToIpv4, prefixMask } from '../net/ipv4.ts'
import { FrameReader, FRAME_HEADROOM, MIN_PACKET, VNET_HEADER, checkHeader } from './frames.ts'
import { Netlink } from './netlink.ts'
import type { IpRunner } from './netlink.ts'
import { TunDevice } from './tun.ts'
import { CniMetrics } from './metrics.ts'
import { HostRules } from './host-rules.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'

/**
 * The data path channel the packets travel on. `-v2`: frames carry the
 * device's virtio-net header (frames.ts); an agent that framed bare packets
 * on `cni` (before 2026-12-06) refuses this name rather than misread it.
 */
export const CNI_CHANNEL = 'cni-v2'
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

/** The claims as a lookup table: by prefix length, longest first, each a map from the masked network to its node. */
function lookupTable (owners: ReadonlyArray<{ block: string, nodeName: string }>): Array<{ mask: number, byNetwork: Map<number, Route> }> {
  const byMask = new Map<number, Map<number, Route>>()
  for (const { block, nodeName } of owners) {
    let subnet
    try { subnet = parseSubnet(block, 'pod block') } catch { continue }
    const mask = prefixMask(subnet.prefix)
    let m = byMask.get(mask)
    if (m === undefined) { m = new Map(); byMask.set(mask, m) }
    m.set(subnet.network, { network: subnet.network, mask, nodeName })
  }
  return [...byMask].sort((a, b) => b[0] - a[0]).map(([mask, byNetwork]) => ({ mask, byNetwork }))
}

/**
 * The blocks the kernel should route to the device: every valid block
 * another node holds, except those inside `clusterCni` (left to the
 * cluster's own CNI).
 */
export function routedBlocks (owners: ReadonlyArray<{ block: string, nodeName: string }>, nodeName: string, clusterCni: readonly string[]): Set<string> {
  const routed = new Set<string>()
  for (const o of owners) {
    if (o.nodeName === nodeName) continue
    let cidr
    try { cidr = parseSubnet(o.block, 'pod block').cidr } catch { continue }
    if (!clusterCni.some(c => cidrWithin(cidr, c))) routed.add(cidr)
  }
  return routed
}

export class PodRouter implements Component {
  readonly name = 'cni-routing'
  readonly #log: Logger
  readonly #channels: PeerChannels
  readonly #table: BlockTable
  readonly #netlink: Netlink
  readonly #metrics: CniMetrics
  readonly #init: { nodeName: string, device: string, mtu: number, meshCidrs: readonly string[] }
  readonly #hostRules: HostRules
  readonly #copied: CopiedStreams | undefined
  /** This node's block, once known, and whether its pods are masqueraded to outside the mesh. */
  #own: { block: string, masquerade: boolean } | undefined
  #tun: TunDevice | undefined
  #reading: Promise<void> | undefined
  /** Routes by prefix length, longest first: each a map from the masked network to its node. */
  #routes: Array<{ mask: number, byNetwork: Map<number, Route> }> = []
  #installed = new Set<string>()
  #reconciling: Promise<void> = Promise.resolve()
  #reconcileSoon: NodeJS.Immediate | undefined
  readonly #links = new Map<string, Link>()
  /** Blocks in these CIDRs get no route to the device: the cluster's own CNI routes them. */
  #clusterCni: readonly string[] = []
  #started = false

  constructor (deps: { logger: Logger, metrics: Registry, channels: PeerChannels, blocks: BlockTable, ip?: IpRunner, hostRules?: HostRules, copied?: CopiedStreams }, init: { nodeName: string, device?: string, mtu?: number, meshCidrs?: readonly string[] }) {
    this.#log = deps.logger
    this.#channels = deps.channels
    this.#table = deps.blocks
    this.#netlink = new Netlink(deps.ip)
    this.#metrics = new CniMetrics(deps.metrics)
    this.#init = { device: TUN_NAME, mtu: 1500, meshCidrs: [], ...init }
    this.#hostRules = deps.hostRules ?? new HostRules()
    // Device reads and channel reads are new buffers, as a proxy's socket reads are: the same reclaiming keeps them from costing full collections.
    this.#copied = deps.copied
    // A list of 10k claims arrives as 10k events: one rebuild after them.
    this.#table.onChange(() => { this.#scheduleReconcile() })
  }

  #scheduleReconcile (): void {
    this.#reconcileSoon ??= setImmediate(() => { this.#reconcileSoon = undefined; this.#reconcile() })
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
    await this.#applyOwnBlock()
    this.#reading = new Promise(resolve => {
      tun.readLoop(framed => { this.#fromDevice(framed) }, err => {
        if (err !== undefined && this.#started) this.#log.error('edge CNI device read failed; pod traffic to other nodes stops', { device, err })
        resolve()
      }, FRAME_HEADROOM)
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

  /**
   * Leaves blocks inside `cidrs` (the cloud side, on a cloud node whose
   * cluster CNI routes between cloud nodes) to that CNI: their routes are
   * not taken over, and ours are removed. They stay in the table, so their
   * pods' packets from the edge are still accepted.
   */
  leaveToClusterCni (cidrs: readonly string[]): void {
    this.#clusterCni = cidrs
    this.#scheduleReconcile()
  }

  /**
   * This node's block. Its first address (the pods' gateway) goes on the
   * device as a /32, so the node's own packets to other nodes' pods leave
   * from an address of the block, the only sources the far end accepts from
   * this node, and the replies come back. With `masquerade` (a block we
   * claimed: its pods have no other CNI) the pods reach what is outside the
   * mesh through the node's address.
   */
  ownBlock (block: string, options: { masquerade: boolean }): void {
    this.#own = { block, masquerade: options.masquerade }
    this.#applyOwnBlock().catch(() => {})
  }

  async #applyOwnBlock (): Promise<void> {
    if (!this.#started) return
    const own = this.#own
    if (own !== undefined) {
      const gateway = `${numberToIpv4(parseSubnet(own.block, 'pod block').network + 1)}/32`
      await this.#netlink.ip(['addr', 'replace', gateway, 'dev', this.#init.device]).catch((err: unknown) => {
        this.#log.warn('edge CNI: the node\'s own packets to other nodes\' pods leave with another address and are dropped there', { address: gateway, err })
      })
    }
    const set = { device: this.#init.device, meshCidrs: this.#init.meshCidrs, masqueradeBlock: own?.masquerade === true ? own.block : undefined }
    await this.#hostRules.apply(set).then(() => {
      this.#log.info('edge CNI host rules set', { chain: 'nat/EDGEMESH-CNI', masquerade: set.masqueradeBlock ?? 'none' })
    }, (err: unknown) => {
      this.#log.warn('edge CNI host rules not set: another CNI may masquerade pod packets to other nodes (dropped there as spoofed), and this node\'s pods do not reach outside the mesh', { err })
    })
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
    this.#routes = lookupTable(owners)
    const remote = routedBlocks(owners, this.#init.nodeName, this.#clusterCni)
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

  /**
   * A packet the kernel routed to the device, after FRAME_HEADROOM free
   * bytes: framed there and sent to the node holding its destination.
   */
  #fromDevice (framed: Buffer): void {
    const length = framed.byteLength - FRAME_HEADROOM
    this.#copied?.add(framed.byteLength)
    if (length < MIN_PACKET || (framed[FRAME_HEADROOM + VNET_HEADER] as number) >> 4 !== 4) { this.#metrics.dropped.inc({ reason: 'not_ipv4' }); return }
    framed.writeUInt32BE(length, 0)
    const owner = this.#ownerOf(framed.readUInt32BE(FRAME_HEADROOM + VNET_HEADER + 16))
    if (owner === undefined || owner === this.#init.nodeName) { this.#metrics.dropped.inc({ reason: 'no_route' }); return }
    const link = this.#link(owner)
    const socket = link.sending
    if (socket !== undefined) { this.#send(link, socket, framed); return }
    if (Date.now() - link.failedAt < REOPEN_AFTER_MS) { this.#drop(link, 'unreachable'); return }
    if (link.pending.length >= MAX_PENDING) { this.#drop(link, 'queue_full'); return }
    link.pending.push(framed)
    if (!link.opening) this.#open(owner, link)
  }

  /** Writes one frame (the length, the header, the packet) to a peer's channel. */
  #send (link: Link, socket: Duplex, framed: Buffer): void {
    if (socket.writableLength > MAX_QUEUED_BYTES) { this.#drop(link, 'queue_full'); return }
    // Packets read in one turn of the event loop leave as one write (one TLS record, one syscall).
    if (!socket.writableCorked) {
      socket.cork()
      process.nextTick(() => { socket.uncork() })
    }
    socket.write(framed)
    const bytes = framed.byteLength - FRAME_HEADROOM - VNET_HEADER
    link.traffic.packetsOut++
    link.traffic.bytesOut += bytes
    this.#metrics.packets.inc({ direction: 'out' })
    this.#metrics.bytes.inc({ direction: 'out' }, bytes)
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
    this.#attach(peer, socket, true)
  }

  /** A channel to `peer` (ours or its own): read for packets; written to when there is none yet, or when the peer opened it. */
  #attach (peer: string, socket: Duplex, accepted = false): void {
    if (!this.#started) { socket.destroy(); return }
    const link = this.#link(peer)
    link.sockets.add(socket)
    // A peer opens a channel only when it has none it can use: after a restart, ours to it may not have
    // seen their end yet (a relay between us, a crash), so what it just opened is where it listens now.
    if (link.sending === undefined || accepted) {
      link.sending = socket
      link.traffic.channel = 'open'
      const pending = link.pending
      link.pending = []
      for (const p of pending) this.#send(link, socket, p)
    }
    const reader = new FrameReader()
    this.#copied?.track(socket)
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

  /**
   * A packet (virtio-net header, IP packet) from `peer`'s channel: written
   * to the device if it is from that peer's pods to ours and its header asks
   * only what the device itself would.
   */
  #fromPeer (peer: string, link: Link, packet: Buffer): void {
    if ((packet[VNET_HEADER] as number) >> 4 !== 4) { this.#drop(link, 'not_ipv4'); return }
    if (this.#ownerOf(packet.readUInt32BE(VNET_HEADER + 12)) !== peer || this.#ownerOf(packet.readUInt32BE(VNET_HEADER + 16)) !== this.#init.nodeName) {
      this.#drop(link, 'spoofed')
      return
    }
    const bad = checkHeader(packet)
    if (bad !== undefined) { this.#drop(link, 'bad_header'); return }
    if (this.#tun?.write(packet) !== true) { this.#drop(link, 'device'); return }
    const bytes = packet.byteLength - VNET_HEADER
    link.traffic.packetsIn++
    link.traffic.bytesIn += bytes
    this.#metrics.packets.inc({ direction: 'in' })
    this.#metrics.bytes.inc({ direction: 'in' }, bytes)
  }
}
