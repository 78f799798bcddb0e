/**
 * Finding peers and their names as upstream does: the name exchange
 * (`/libp2p/tunnel-discovery/1.0.0`, so a Go EdgeMesh that found us can map
 * our name to our PeerID), and optional LAN (mDNS) and DHT discovery whose
 * peers are dialed at once.
 */
import type { Libp2p, PeerId, PeerInfo as Libp2pPeerInfo, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../observability/logger.ts'
import { DISCOVERY_PROTOCOL, MessageType, encodeDiscovery } from './messages.ts'
import { WHOIS_PROTOCOL } from './identities.ts'
import { readMessage } from './proxy-protocol.ts'
import { isHostOnly } from './mdns.ts'
import type { LanPeer, MdnsDiscovery } from './mdns.ts'
import type { DhtDiscovery } from './dht.ts'
import type { PeerDirectory } from './peer-directory.ts'
import { closeQuietly } from './peer-directory.ts'

export interface DiscoveryInit {
  nodeName: string
  /** LAN discovery by mDNS under upstream's rendezvous name (`<serviceName>.local`). */
  mdns?: { serviceName: string } | undefined
  /** Upstream's DHT discovery: provider records for the rendezvous, looked up every `findIntervalMs`. */
  dht?: { rendezvous: string, findIntervalMs: number } | undefined
}

export class Discovery {
  readonly #log: Logger
  readonly #directory: PeerDirectory
  readonly #circuitsTo: (peerId: string) => string[]
  readonly #init: DiscoveryInit
  /** Direct addresses of peers found by mDNS on this LAN, by PeerID: dialed before relay circuits. */
  readonly #lanAddrs = new Map<string, Multiaddr[]>()
  /** Peers the DHT reported, logged once each. */
  readonly #dhtPeers = new Set<string>()
  #mdns: MdnsDiscovery | undefined
  #dht: DhtDiscovery | undefined

  constructor (deps: { logger: Logger, directory: PeerDirectory, circuitsTo: (peerId: string) => string[] }, init: DiscoveryInit) {
    this.#log = deps.logger
    this.#directory = deps.directory
    this.#circuitsTo = deps.circuitsTo
    this.#init = init
  }

  /** LAN addresses mDNS found for a peer. */
  lanAddresses (peerId: string): readonly Multiaddr[] {
    return this.#lanAddrs.get(peerId) ?? []
  }

  /** The name exchange's handlers; before the host starts. */
  async handle (node: Libp2p): Promise<void> {
    await node.handle(DISCOVERY_PROTOCOL, (stream, connection) => {
      this.#serve(stream, connection.remotePeer).catch((err: Error) => {
        this.#log.debug('bad discovery request', { err: err.message })
        stream.abort(new Error('bad discovery'))
      })
    }, { runOnLimitedConnection: true })
    // And we tell Go peers ours: their proxy dials need our name in their map (they cannot derive PeerIDs of non-relays).
    node.addEventListener('peer:identify', (evt) => {
      const { peerId, protocols } = evt.detail
      if (!protocols.includes(DISCOVERY_PROTOCOL) || protocols.includes(WHOIS_PROTOCOL)) return
      this.#discover(node, peerId).catch((err: Error) => this.#log.debug('discovery handshake failed', { peer: peerId.toString(), err: err.message }))
    })
  }

  /** mDNS and the DHT, once the host runs. */
  async start (node: Libp2p, multiaddr: (a: string) => Multiaddr): Promise<void> {
    this.#lanAddrs.clear()
    if (this.#init.mdns !== undefined) {
      const [{ MdnsDiscovery }, { peerIdFromString }] = await Promise.all([import('./mdns.ts'), import('@libp2p/peer-id')])
      this.#mdns = new MdnsDiscovery({ logger: this.#log, onPeer: peer => { this.#onLanPeer(node, multiaddr, peerIdFromString, peer) } }, {
        serviceName: this.#init.mdns.serviceName,
        peerId: node.peerId.toString(),
        addresses: () => node.getMultiaddrs().map(a => a.toString())
      })
      await this.#mdns.start()
    }
    if (this.#init.dht !== undefined) {
      const { DhtDiscovery } = await import('./dht.ts')
      this.#dht = new DhtDiscovery({ logger: this.#log, node, onPeer: peer => { this.#onDhtPeer(node, multiaddr, peer) } }, this.#init.dht)
      await this.#dht.start()
    }
  }

  async stop (): Promise<void> {
    await this.#dht?.stop()
    this.#dht = undefined
    await this.#mdns?.stop()
    this.#mdns = undefined
  }

  /** Responder: SUCCESS with our name, as upstream answers. */
  async #serve (stream: Stream, remote: PeerId): Promise<void> {
    const { message } = await readMessage(stream, AbortSignal.timeout(5000))
    if (message.type !== MessageType.CONNECT) { stream.abort(new Error('expected CONNECT')); return }
    stream.send(encodeDiscovery({ type: MessageType.SUCCESS, protocol: message.protocol, nodeName: this.#init.nodeName }))
    closeQuietly(stream, this.#log)
    await this.#directory.learnName(remote, message.nodeName)
  }

  /** Initiator: the Go peer maps our name to our PeerID, and tells us its own. */
  async #discover (node: Libp2p, peerId: PeerId): Promise<void> {
    const signal = AbortSignal.timeout(5000)
    const stream = await node.dialProtocol(peerId, DISCOVERY_PROTOCOL, { signal, runOnLimitedConnection: true })
    stream.send(encodeDiscovery({ type: MessageType.CONNECT, protocol: 'DHT', nodeName: this.#init.nodeName }))
    const { message } = await readMessage(stream, signal)
    // Upstream resets the stream after the answer.
    stream.abort(new Error('discovery done'))
    if (message.type === MessageType.SUCCESS) await this.#directory.learnName(peerId, message.nodeName)
  }

  /** mDNS: keep the peer's LAN addresses and connect, as upstream does (identify then runs the name exchange with Go peers). */
  #onLanPeer (node: Libp2p, multiaddr: (a: string) => Multiaddr, peerIdFromString: (id: string) => PeerId, peer: LanPeer): void {
    if (peer.peerId === node.peerId.toString()) return
    // Upstream announces its loopback address too: useless, and on this host it would be ourselves.
    const addrs = peer.addrs.filter(a => !isHostOnly(a))
    let id: PeerId
    let lan: Multiaddr[]
    try {
      id = peerIdFromString(peer.peerId)
      lan = addrs.map(a => multiaddr(`${a}/p2p/${peer.peerId}`))
    } catch (err) {
      this.#log.debug('unreadable mDNS announcement', { peer: peer.peerId, err: (err as Error).message })
      return
    }
    if (lan.length === 0) return
    const known = this.#lanAddrs.get(peer.peerId)
    this.#lanAddrs.set(peer.peerId, lan)
    if (known === undefined) this.#log.info('peer found on the LAN', { peer: peer.peerId, node: this.#directory.nameOf(peer.peerId), addresses: addrs })
    if (node.getConnections(id).some(c => c.limits === undefined)) return
    node.dial(lan).catch((err: Error) => this.#log.debug('dialing a peer found on the LAN failed', { peer: peer.peerId, err: err.message }))
  }

  /**
   * A peer that advertised the rendezvous on the DHT: connect, as upstream
   * does (its addresses, then circuits through our relays, since it may be
   * behind NAT); identify then runs the name exchange with Go peers.
   */
  #onDhtPeer (node: Libp2p, multiaddr: (a: string) => Multiaddr, peer: Libp2pPeerInfo): void {
    const id = peer.id.toString()
    if (!this.#dhtPeers.has(id)) this.#log.info('peer found on the DHT', { peer: id, node: this.#directory.nameOf(id), addresses: peer.multiaddrs.map(a => a.toString()) })
    this.#dhtPeers.add(id)
    if (node.getConnections(peer.id).length > 0) return
    const targets = [
      ...peer.multiaddrs.filter(a => !isHostOnly(a.toString())).map(a => a.toString().includes('/p2p/') ? a : multiaddr(`${a.toString()}/p2p/${id}`)),
      ...this.#circuitsTo(id).map(multiaddr)
    ]
    if (targets.length === 0) return
    node.dial(targets).catch((err: Error) => this.#log.debug('dialing a peer found on the DHT failed', { peer: id, err: err.message }))
  }
}
