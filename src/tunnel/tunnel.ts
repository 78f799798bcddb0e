/**
 * EdgeTunnel: a libp2p host compatible with EdgeMesh v1.17 (TCP, pnet from
 * the PSK, Noise, Yamux, circuit relay v2, PeerIDs derived from node names)
 * that carries proxied connections with `/libp2p/tunnel-proxy/1.0.0`.
 *
 * Relay nodes (`relayNodes`) run the relay service; every other node holds a
 * reservation on every relay, so a node behind NAT is reachable through any
 * of them. A connection to an endpoint on another node opens one stream on
 * the (direct or relayed) connection to that node's agent: no new handshake.
 */
import { readFile } from 'node:fs/promises'
import { connect, isIP } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Libp2p, PeerId, PeerInfo as Libp2pPeerInfo, Stream } from '@libp2p/interface'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Gauge, Counter } from 'prom-client'
import type { Registry } from 'prom-client'
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import type { DatagramChannel, DialTarget, EndpointDialer } from '../proxy/dialer.ts'
import { compatSeed } from './identity.ts'
import { DISCOVERY_PROTOCOL, PROXY_PROTOCOL, MessageType, decodeProxyBody, encodeDiscovery, encodeProxy, takeFrame } from './messages.ts'
import type { ProxyMessage } from './messages.ts'
import { derivePnetKey } from './psk.ts'
import { createProtector } from './pnet.ts'
import { loadSodium } from './sodium.ts'
import type { PnetImplementation } from './pnet.ts'
import { streamToDuplex } from './stream.ts'
import { UDP_FRAMED, serveDatagrams, streamChannel } from './datagrams.ts'
import { TunnelDialError, TunnelPskError } from './errors.ts'
import type { DataPath, DataPathInit, HostPort, PeerRoute } from '../datapath/datapath.ts'
import { isHostOnly } from './mdns.ts'
import type { LanPeer, MdnsDiscovery } from './mdns.ts'
import type { DhtDiscovery } from './dht.ts'
import { LOOKUP_PROTOCOL, PeerPins, REGISTER_PROTOCOL, WHOIS_PROTOCOL, loadOrCreateKey, readStreamLine, sendLine } from './identities.ts'

/** Ours: where a node's TLS data path listens (`{"port":…,"hosts":[…]}`); a Go peer does not speak it and keeps the proxy protocol. */
export const DATAPATH_PROTOCOL = '/edgemesh/datapath/1.0.0'
/** How long a peer's data path address is trusted, and how long a peer without one is not asked again. */
const ROUTE_TTL_MS = 60_000
const NO_ROUTE_TTL_MS = 5 * 60_000
/** Streams a new connection may carry before our side has finished upgrading it (see the muxer options). */
const EARLY_STREAMS = 1024
/** Least time libp2p's connection monitor gives a ping before it drops the connection. */
const PING_TIMEOUT_MS = 30_000

/** A relay and the TCP addresses other nodes dial it at (`advertiseAddress` × `listenPort`); `host` is an IP or a DNS name. */
export interface RelayNode { nodeName: string, addresses: ReadonlyArray<{ host: string, port: number }> }

function tcpAddr (a: { host: string, port: number }): string {
  return `/${isIP(a.host) === 6 ? 'ip6' : isIP(a.host) === 4 ? 'ip4' : 'dns4'}/${a.host}/tcp/${a.port}`
}

export interface EdgeTunnelInit {
  nodeName: string
  listenPort: number
  /** Addresses to listen on. @default ['0.0.0.0'] */
  listenAddresses?: readonly string[]
  relayNodes: readonly RelayNode[]
  /** PSK file (`psk.path`); undefined when `psk.enable` is false. */
  pskFile: string | undefined
  /** Inbound proxy streams at once. @default 10240 */
  maxInboundStreams?: number
  /** Relay service limits (relay nodes only). */
  relay?: { maxReservations?: number, reservationTtlMs?: number }
  /** How long a proxied dial may take, handshake included. @default 10000 */
  dialTimeoutMs?: number
  /** Hold reservations on the relays (a node that only dials out, like `edgemesh doctor`, does not). @default true */
  reserve?: boolean
  /** How often lost relay connections and reservations are re-established (`heartbeatPeriod`). @default 120000 */
  heartbeatMs?: number
  /** XSalsa20 for the private network: libsodium (`native`) or the `xsalsa20` WebAssembly (`wasm`, also the fallback when the addon does not load). @default 'native' */
  pnet?: PnetImplementation
  /**
   * Largest Yamux receive window per stream: what one stream may have in
   * flight, and so what a relay or a slow reader buffers for it. Yamux starts
   * at 256 KiB and grows towards this on fast links. @default 1048576
   */
  maxStreamWindowBytes?: number
  /**
   * `secure`: a random key kept in `keyFile` (0600), peers' PeerIDs learned
   * through the relays and pinned in `pinsFile` (see identities.ts). Absent:
   * upstream's keys derived from node names (compatible with Go EdgeMesh).
   */
  identity?: { mode: 'secure', keyFile: string, pinsFile: string }
  /** The TLS data path between our agents (needs the PSK); undefined keeps every connection on libp2p. */
  dataPath?: Pick<DataPathInit, 'port' | 'poolSize' | 'parkedPerRelay' | 'relayLimits'>
  /** LAN discovery by mDNS under upstream's rendezvous name (`<serviceName>.local`); peers found are dialed directly. */
  mdns?: { serviceName: string }
  /** Upstream's DHT discovery: provider records for the rendezvous on both of its DHTs, looked up every `findIntervalMs`. */
  dht?: { rendezvous: string, findIntervalMs: number }
}

/** The outcome of a handshake with one relay. */
export interface RelayProbe {
  nodeName: string
  addresses: string[]
  ok: boolean
  /** Why it failed: `psk` (the handshake failed: another PSK, or not an EdgeMesh peer) or `unreachable`. */
  reason?: 'psk' | 'unreachable'
  error?: string
}

export interface PeerInfo {
  nodeName: string | undefined
  peerId: string
  addresses: string[]
  /** `direct`, or `relay` when the connection runs through a circuit. */
  path: 'direct' | 'relay'
  since: number
  /** This node holds a reservation on this peer (a relay). */
  reserved?: boolean
  /** The relay a relayed connection runs through, by node name when known. */
  via?: string
  /** Round-trip time from libp2p's connection monitor, ms. */
  rttMs?: number
  /** The path this peer's latest proxied TCP connection took on the TLS data path, when it took it. */
  dataPath?: 'direct' | 'relay'
  /** The relay that spliced it. */
  dataPathVia?: string
}

/** Tunnel metrics (`edgemesh_tunnel_*`); the peer gauge is computed when scraped. */
export class TunnelMetrics {
  readonly streams: Counter<'direction' | 'result'>
  readonly peers: Gauge<'path'>
  readonly reservations: Gauge
  readonly handshakeFailures: Counter<'reason'>

  constructor (registry: Registry, peers: () => PeerInfo[] = () => []) {
    const registers = [registry]
    this.handshakeFailures = new Counter({ name: 'edgemesh_tunnel_relay_dial_failures_total', help: 'Failed connections to relays, by reason: psk (TCP connects, the handshake fails: another PSK, or not an EdgeMesh peer) or unreachable.', labelNames: ['reason'], registers })
    this.streams = new Counter({ name: 'edgemesh_tunnel_streams_total', help: 'Proxy streams, by direction (inbound/outbound) and result.', labelNames: ['direction', 'result'], registers })
    this.peers = new Gauge({
      name: 'edgemesh_tunnel_peers',
      help: 'Connected peers by path (direct or relay).',
      labelNames: ['path'],
      registers,
      collect () {
        const list = peers()
        this.set({ path: 'direct' }, list.filter(p => p.path === 'direct').length)
        this.set({ path: 'relay' }, list.filter(p => p.path === 'relay').length)
      }
    })
    this.reservations = new Gauge({
      name: 'edgemesh_tunnel_relay_reservations',
      help: 'Relays this node holds a reservation on (reachable through them).',
      registers,
      collect () {
        this.set(new Set(peers().filter(p => p.reserved === true).map(p => p.peerId)).size)
      }
    })
  }
}

/** An open connection that does not carry a new stream within this long is considered dead. */
const STALE_CONNECTION_MS = 750

/** PeerIDs by node name, computed once (upstream's derivation). */
const peerIds = new Map<string, Promise<PeerId>>()
async function compatPeerId (nodeName: string): Promise<PeerId> {
  let p = peerIds.get(nodeName)
  if (p === undefined) {
    p = (async () => {
      const { generateKeyPairFromSeed } = await import('@libp2p/crypto/keys')
      const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
      return peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', compatSeed(nodeName)))
    })()
    peerIds.set(nodeName, p)
  }
  return await p
}

/** Reads one framed handshake message from a stream, keeping whatever followed it. */
async function readMessage (stream: Stream, signal: AbortSignal): Promise<{ message: ProxyMessage, rest: Buffer }> {
  return await new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    const done = (err?: Error, value?: { message: ProxyMessage, rest: Buffer }): void => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
      if (err !== undefined) reject(err)
      else resolve(value as { message: ProxyMessage, rest: Buffer })
    }
    const onMessage = (e: { data: Uint8Array | { subarray: () => Uint8Array } }): void => {
      const data = e.data instanceof Uint8Array ? e.data : e.data.subarray()
      buf = Buffer.concat([buf, data])
      try {
        const frame = takeFrame(buf)
        if (frame === undefined) return
        // Stop delivering until the caller attaches its own reader; later bytes stay buffered in the stream.
        stream.pause()
        done(undefined, { message: decodeProxyBody(frame.body), rest: Buffer.from(frame.rest) })
      } catch (err) {
        done(err as Error)
      }
    }
    const onClose = (): void => done(new Error('stream closed during the handshake'))
    const onAbort = (): void => done(signal.reason instanceof Error ? signal.reason : new Error('handshake aborted'))
    stream.addEventListener('message', onMessage as never)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

export class EdgeTunnel implements Component, EndpointDialer {
  readonly name = 'tunnel'
  readonly #log: Logger
  readonly #registry: Registry
  readonly #init: EdgeTunnelInit
  #node: Libp2p | undefined
  #relays: Array<{ nodeName: string, peerId: PeerId, addrs: Multiaddr[] }> = []
  #metrics: TunnelMetrics | undefined
  #multiaddr: ((addr: string) => Multiaddr) | undefined
  #heartbeat: NodeJS.Timeout | undefined
  readonly #nodeNames = new Map<string, string>()
  /** Direct addresses of peers found by mDNS on this LAN, by PeerID: dialed before relay circuits. */
  readonly #lanAddrs = new Map<string, Multiaddr[]>()
  /** When data last arrived from each peer (performance.now()): a busy connection is not a dead one. */
  readonly #heardAt = new Map<string, number>()
  #mdns: MdnsDiscovery | undefined
  #dht: DhtDiscovery | undefined
  /** Peers the DHT reported, logged once each. */
  readonly #dhtPeers = new Set<string>()
  #peerIdFromString: ((id: string) => PeerId) | undefined
  #dataPath: DataPath | undefined
  /** Data path routes by node name (undefined: the peer has none, e.g. a Go EdgeMesh). */
  readonly #routes = new Map<string, { route: PeerRoute | undefined, at: number }>()
  /** Relays' data path addresses, learned from each relay. */
  #relayData: Array<{ nodeName: string, address: HostPort }> = []
  #relayDataTimer: NodeJS.Timeout | undefined
  /** Secure identity mode: the pins, and (on relays) the names nodes registered, by PeerID. */
  #pins: PeerPins | undefined
  /** The configured relays (`relayNodes`, as last applied). */
  #relayNodes: readonly RelayNode[]
  #resolving = false
  readonly #registered = new Map<string, string>()
  readonly #copied: CopiedStreams | undefined

  constructor (deps: { logger: Logger, metrics: Registry, copied?: CopiedStreams }, init: EdgeTunnelInit) {
    this.#log = deps.logger
    this.#copied = deps.copied
    this.#registry = deps.metrics
    this.#init = init
    this.#relayNodes = init.relayNodes
  }

  get isRelay (): boolean {
    return this.#init.relayNodes.some(r => r.nodeName === this.#init.nodeName)
  }

  /** This node's PeerID, once started. */
  peerId (): string | undefined {
    return this.#node?.peerId.toString()
  }

  /** Listening and announced addresses, once started. */
  addresses (): string[] {
    return this.#node?.getMultiaddrs().map(a => a.toString()) ?? []
  }

  /** Started, and (unless this node is a relay or has none) holding a reservation on at least one relay. */
  isReady (): boolean {
    if (this.#node === undefined) return false
    if (this.isRelay || this.#relays.length === 0 || this.#init.reserve === false) return true
    return this.addresses().some(a => a.includes('/p2p-circuit'))
  }

  /** Connected peers with their path; node names where known (relays, peers we dialed, peers that dialed us). */
  peers (): PeerInfo[] {
    const node = this.#node
    if (node === undefined) return []
    const out: PeerInfo[] = []
    const dataPeers = new Map((this.#dataPath?.peers() ?? []).map(p => [p.nodeName, p]))
    const reservedOn = new Set(this.addresses().filter(a => a.includes('/p2p-circuit')).map(a => /\/p2p\/(\w+)\/p2p-circuit/.exec(a)?.[1]))
    for (const conn of node.getConnections()) {
      const id = conn.remotePeer.toString()
      const relayId = /\/p2p\/(\w+)\/p2p-circuit/.exec(conn.remoteAddr.toString())?.[1]
      out.push({
        reserved: reservedOn.has(id),
        ...(relayId !== undefined ? { via: this.#nodeNames.get(relayId) ?? relayId } : {}),
        ...(conn.rtt !== undefined ? { rttMs: Math.round(conn.rtt * 10) / 10 } : {}),
        nodeName: this.#nodeNames.get(id),
        peerId: id,
        addresses: [conn.remoteAddr.toString()],
        path: conn.remoteAddr.toString().includes('/p2p-circuit') ? 'relay' : 'direct',
        since: conn.timeline.open
      })
    }
    for (const p of out) {
      const d = p.nodeName !== undefined ? dataPeers.get(p.nodeName) : undefined
      if (d === undefined) continue
      p.dataPath = d.path
      if (d.via !== undefined) p.dataPathVia = d.via
    }
    return out
  }

  async start (): Promise<void> {
    if (this.#node !== undefined) return
    const init = this.#init
    let psk: Uint8Array | undefined
    if (init.pskFile !== undefined) {
      let bytes: Buffer
      try {
        bytes = await readFile(init.pskFile)
      } catch (err) {
        throw new TunnelPskError(init.pskFile, (err as NodeJS.ErrnoException).code ?? String(err), { cause: err })
      }
      if (bytes.length === 0) throw new TunnelPskError(init.pskFile, 'the file is empty')
      psk = derivePnetKey(bytes)
    }
    // Loaded here, not at import: nodes without the tunnel never pay for libp2p.
    const [{ createLibp2p }, { tcp }, { noise }, { yamux }, relayMod, { identify }, { generateKeyPairFromSeed }, { multiaddr }] = await Promise.all([
      import('libp2p'), import('@libp2p/tcp'), import('@chainsafe/libp2p-noise'), import('@chainsafe/libp2p-yamux'),
      import('@libp2p/circuit-relay-v2'), import('@libp2p/identify'), import('@libp2p/crypto/keys'),
      import('@multiformats/multiaddr')
    ])
    this.#multiaddr = multiaddr
    this.#relays = []
    this.#lanAddrs.clear()
    const secure = init.identity?.mode === 'secure'
    if (secure) {
      this.#pins = new PeerPins(init.identity?.pinsFile as string)
      await this.#pins.load()
    }
    // Secure mode learns relays' PeerIDs by dialing them after start (#resolveRelays).
    for (const r of secure ? [] : init.relayNodes) {
      if (r.nodeName === init.nodeName) continue
      const peerId = await compatPeerId(r.nodeName)
      this.#nodeNames.set(peerId.toString(), r.nodeName)
      this.#relays.push({ nodeName: r.nodeName, peerId, addrs: r.addresses.map(a => multiaddr(tcpAddr(a))) })
    }
    const listen = (init.listenAddresses ?? ['0.0.0.0']).map(a => `/ip4/${a}/tcp/${init.listenPort}`)
    // Behind NAT nobody can dial us: hold a reservation on every relay (HA).
    if (!this.isRelay && init.reserve !== false) for (const r of this.#relays) for (const a of r.addrs) listen.push(`${a.toString()}/p2p/${r.peerId.toString()}/p2p-circuit`)
    const self = init.relayNodes.find(r => r.nodeName === init.nodeName)
    const protector = psk !== undefined ? await createProtector(psk, init.pnet, this.#copied) : undefined
    const window = Math.max(256 * 1024, init.maxStreamWindowBytes ?? 1024 * 1024)
    const noiseCrypto = await loadNoiseCrypto()
    let privateKey
    if (secure) {
      const own = await loadOrCreateKey(init.identity?.keyFile as string)
      privateKey = own.key
      if (own.created) this.#log.info('tunnel identity created', { file: init.identity?.keyFile })
    } else {
      privateKey = await generateKeyPairFromSeed('Ed25519', compatSeed(init.nodeName))
    }
    const services: Record<string, unknown> = { identify: identify() }
    if (init.dht !== undefined) Object.assign(services, await (await import('./dht.ts')).dhtServices())
    if (this.isRelay) {
      services.relay = relayMod.circuitRelayServer({
        reservations: {
          maxReservations: init.relay?.maxReservations ?? 128,
          reservationTtl: init.relay?.reservationTtlMs ?? 60 * 60 * 1000,
          // Upstream relays without a per-circuit limit; libp2p's default (2 min, 128 KiB) cuts transfers.
          applyDefaultLimit: false
        }
      })
    }
    const node = await createLibp2p({
      privateKey,
      addresses: {
        listen,
        ...(self !== undefined ? { appendAnnounce: self.addresses.map(tcpAddr) } : {})
      },
      transports: [tcp(), relayMod.circuitRelayTransport({ reservationCompletionTimeout: 10_000, reservationConcurrency: 4 })],
      connectionEncrypters: [noise(noiseCrypto !== undefined ? { crypto: noiseCrypto } : {})],
      streamMuxers: [yamux({
        // Streams the far side opens while our end of a new connection is still being upgraded wait as
        // "early streams"; beyond 10 (the default) yamux aborts the whole connection. A burst of proxied
        // connections to a node we just connected to (50 at once through a relay) did exactly that.
        maxEarlyStreams: EARLY_STREAMS,
        streamOptions: { maxStreamWindowSize: window, maxReadBufferLength: 2 * window }
      })],
      ...(protector !== undefined ? { connectionProtector: protector.protector } : {}),
      connectionGater: { denyDialMultiaddr: () => false },
      // libp2p pings every connection every 10 s and, by default, aborts one whose ping takes over 5 s. On a
      // relayed connection carrying many bulk streams the ping queues behind their data for longer, and the
      // abort cut them all (iperf3 -P 50 through a relay). A dead connection still fails its pings.
      connectionMonitor: { pingTimeout: { minTimeout: PING_TIMEOUT_MS } },
      // A relay that is down at start must not stop the agent: reservations are retried.
      transportManager: { faultTolerance: 1 /* FaultTolerance.NO_FATAL */ },
      services: services as never,
      start: false
    })
    await node.handle(PROXY_PROTOCOL, (stream, connection) => {
      this.#serveProxy(stream, connection.remotePeer.toString()).catch(err => this.#log.debug('proxy stream failed', { err }))
    }, { runOnLimitedConnection: true, maxInboundStreams: init.maxInboundStreams ?? 10_240 })
    for (const r of this.#relays) await node.peerStore.merge(r.peerId, { multiaddrs: r.addrs })
    // Upstream's name exchange: a Go EdgeMesh that found us (mDNS, DHT) learns our name this way.
    await node.handle(DISCOVERY_PROTOCOL, (stream, connection) => {
      this.#serveDiscovery(stream, connection.remotePeer).catch(() => stream.abort(new Error('bad discovery')))
    }, { runOnLimitedConnection: true })
    node.addEventListener('peer:disconnect', (evt) => { this.#heardAt.delete(evt.detail.toString()) })
    // And we tell Go peers ours: their proxy dials need our name in their map (they cannot derive PeerIDs of non-relays).
    node.addEventListener('peer:identify', (evt) => {
      const { peerId, protocols } = evt.detail
      if (!protocols.includes(DISCOVERY_PROTOCOL) || protocols.includes(WHOIS_PROTOCOL)) return
      this.#discover(peerId).catch((err: Error) => this.#log.debug('discovery handshake failed', { peer: peerId.toString(), err: err.message }))
    })
    await node.handle(WHOIS_PROTOCOL, (stream) => {
      sendLine(stream, { nodeName: init.nodeName })
      stream.close().catch(() => {})
    }, { runOnLimitedConnection: true })
    if (this.isRelay) {
      // Names → PeerIDs for the secure mode: the PeerID is the one the connection's handshake proved.
      await node.handle(REGISTER_PROTOCOL, (stream, connection) => {
        this.#serveRegister(stream, connection.remotePeer.toString()).catch(() => stream.abort(new Error('bad register')))
      }, { runOnLimitedConnection: true })
      await node.handle(LOOKUP_PROTOCOL, (stream) => {
        readStreamLine(stream, AbortSignal.timeout(5000)).then(line => {
          const name = (JSON.parse(line) as { nodeName?: unknown }).nodeName
          const peerId = [...this.#registered].find(([, n]) => n === name)?.[0]
          sendLine(stream, peerId !== undefined ? { peerId } : {})
          stream.close().catch(() => {})
        }).catch(() => stream.abort(new Error('bad lookup')))
      }, { runOnLimitedConnection: true })
    }
    if (init.dataPath !== undefined && secure) {
      // Its TLS keys come from the PSK and node names only: any PSK holder could claim a name there.
      this.#log.warn('the TLS data path authenticates with the PSK only, not node keys: with identity: secure, proxied connections stay on libp2p')
    } else if (init.dataPath !== undefined && psk !== undefined) {
      const { DataPath } = await import('../datapath/datapath.ts')
      // One instance for the tunnel's life: it registers its metrics once.
      this.#dataPath ??= new DataPath({ logger: this.#log, metrics: this.#registry, copied: this.#copied }, {
        nodeName: init.nodeName,
        port: init.dataPath.port,
        listenHost: init.listenAddresses?.[0] ?? '0.0.0.0',
        pnetKey: psk,
        isRelay: this.isRelay,
        poolSize: init.dataPath.poolSize,
        parkedPerRelay: init.dataPath.parkedPerRelay,
        relayLimits: init.dataPath.relayLimits
      })
      await this.#dataPath.start()
      await node.handle(DATAPATH_PROTOCOL, (stream) => {
        stream.send(Buffer.from(JSON.stringify({ port: this.#dataPath?.port(), hosts: this.#dataHosts() }) + '\n'))
        stream.close().catch(() => {})
      }, { runOnLimitedConnection: true })
    } else if (init.dataPath !== undefined) {
      this.#log.warn('the TLS data path needs the PSK (psk.enable): proxied connections stay on libp2p')
    }
    await node.start()
    this.#node = node
    if (init.mdns !== undefined) {
      const [{ MdnsDiscovery }, { peerIdFromString }] = await Promise.all([import('./mdns.ts'), import('@libp2p/peer-id')])
      this.#peerIdFromString = peerIdFromString
      this.#mdns = new MdnsDiscovery({ logger: this.#log, onPeer: peer => { this.#onLanPeer(node, peer) } }, {
        serviceName: init.mdns.serviceName,
        peerId: node.peerId.toString(),
        addresses: () => node.getMultiaddrs().map(a => a.toString())
      })
      await this.#mdns.start()
    }
    if (init.dht !== undefined) {
      const { DhtDiscovery } = await import('./dht.ts')
      this.#dht = new DhtDiscovery({ logger: this.#log, node, onPeer: peer => { this.#onDhtPeer(node, peer) } }, init.dht)
      await this.#dht.start()
    }
    this.#metrics ??= new TunnelMetrics(this.#registry, () => this.peers())
    this.#log.info('tunnel listening', {
      peerId: node.peerId.toString(),
      relay: this.isRelay,
      addresses: this.addresses(),
      pnet: protector?.implementation ?? 'off',
      ...(this.#dataPath !== undefined ? { dataPathPort: this.#dataPath.port() } : {})
    })
    if (this.#dataPath !== undefined) {
      this.#refreshRelayData(false).catch(() => {})
      // Relays that were down at start are asked again until each answers.
      this.#relayDataTimer = setInterval(() => { this.#refreshRelayData(true).catch(() => {}) }, 5000)
      this.#relayDataTimer.unref()
    }
    let beating = false
    this.#heartbeat = setInterval(() => {
      if (beating) return
      beating = true
      this.#beat().catch(() => {}).finally(() => { beating = false })
    }, init.heartbeatMs ?? 120_000)
    this.#heartbeat.unref()
    if (secure) this.#resolveRelays().catch(() => {})
    // Reservations are made by the circuit transport; connect to relays anyway so failures are named now.
    for (const r of this.#relays) {
      node.dial(r.peerId, { signal: AbortSignal.timeout(10_000) }).then(() => {
        this.#log.info('connected to relay', { relay: r.nodeName })
      }, async (err: Error) => { await this.#relayDialFailed(r.nodeName, r.addrs, err) })
    }
  }

  /** Counts and logs a failed relay dial with its reason (the PSK, or the network). */
  async #relayDialFailed (relay: string, addrs: readonly Multiaddr[], err: Error): Promise<'psk' | 'unreachable'> {
    const reason = await classifyFailure(err, addrs)
    this.#metrics?.handshakeFailures.inc({ reason })
    this.#log.warn(reason === 'psk' ? 'PSK mismatch or not an EdgeMesh peer' : 'relay unreachable', { relay, addresses: addrs.map(String), err: err.message })
    return reason
  }

  /** Dials every relay once (a full pnet + Noise handshake) and reports each. */
  async probeRelays (timeoutMs = 5000): Promise<RelayProbe[]> {
    const node = this.#node
    if (node === undefined) throw new TunnelDialError('', 'the tunnel is not running')
    return await Promise.all(this.#relays.map(async (r): Promise<RelayProbe> => {
      const addresses = r.addrs.map(String)
      try {
        await node.dial(r.addrs.map(a => a.encapsulate(`/p2p/${r.peerId.toString()}`)), { signal: AbortSignal.timeout(timeoutMs) })
        return { nodeName: r.nodeName, addresses, ok: true }
      } catch (err) {
        const e = err as Error
        const reason = await classifyFailure(e, r.addrs)
        this.#metrics?.handshakeFailures.inc({ reason })
        return { nodeName: r.nodeName, addresses, ok: false, reason, error: e.message }
      }
    }))
  }

  /**
   * Applies a new `relayNodes` list without a restart: new relays are dialed
   * and reserved on at once, removed ones are no longer used for new
   * connections. Becoming (or ceasing to be) a relay needs a restart.
   */
  async updateRelays (relayNodes: readonly RelayNode[]): Promise<void> {
    const wasRelay = this.isRelay
    const nowRelay = relayNodes.some(r => r.nodeName === this.#init.nodeName)
    if (wasRelay !== nowRelay) this.#log.warn('this node was added to or removed from relayNodes: restart the agent to apply that part', { node: this.#init.nodeName })
    const multiaddr = this.#multiaddr
    const node = this.#node
    this.#relayNodes = relayNodes
    if (multiaddr === undefined || node === undefined) return
    if (this.#init.identity?.mode === 'secure') {
      // Kept relays keep their PeerIDs; new ones are dialed and checked by #beat.
      const names = new Set(relayNodes.map(r => r.nodeName))
      this.#relays = this.#relays.filter(r => names.has(r.nodeName))
      this.#log.info('relayNodes updated', { relays: [...names] })
      await this.#beat()
      await this.#refreshRelayData(false)
      return
    }
    const next: Array<{ nodeName: string, peerId: PeerId, addrs: Multiaddr[] }> = []
    for (const r of relayNodes) {
      if (r.nodeName === this.#init.nodeName) continue
      const peerId = await compatPeerId(r.nodeName)
      this.#nodeNames.set(peerId.toString(), r.nodeName)
      const addrs = r.addresses.map(a => multiaddr(tcpAddr(a)))
      await node.peerStore.merge(peerId, { multiaddrs: addrs })
      next.push({ nodeName: r.nodeName, peerId, addrs })
    }
    const before = new Set(this.#relays.map(r => r.nodeName))
    const after = new Set(next.map(r => r.nodeName))
    this.#relays = next
    this.#log.info('relayNodes updated', { added: [...after].filter(n => !before.has(n)), removed: [...before].filter(n => !after.has(n)) })
    await this.#beat()
    await this.#refreshRelayData(false)
  }

  /**
   * Upstream's heartbeat: reconnect to relays we lost and, on nodes that
   * reserve, listen on a relay's circuit again once its reservation is gone
   * (a restarted relay forgets them; js-libp2p does not renew them by itself).
   */
  async #beat (): Promise<void> {
    const node = this.#node
    if (node === undefined) return
    if (this.#init.identity?.mode === 'secure') await this.#resolveRelays()
    await this.#keepRelays(node)
  }

  /** Redials lost relays, and reserves again where a reservation is gone. */
  async #keepRelays (node: Libp2p): Promise<void> {
    const reserve = !this.isRelay && this.#init.reserve !== false
    const held = new Set(node.getMultiaddrs().map(String).filter(a => a.includes('/p2p-circuit')))
    for (const r of this.#relays) {
      const id = r.peerId.toString()
      if (reserve && ![...held].some(a => a.includes(`/p2p/${id}/p2p-circuit`))) {
        // Not part of the Libp2p interface: the transport manager is the only way to listen again.
        const tm = (node as unknown as { components?: { transportManager?: { listen: (addrs: Multiaddr[]) => Promise<void> } } }).components?.transportManager
        await tm?.listen(r.addrs.map(a => a.encapsulate(`/p2p/${id}/p2p-circuit`))).then(() => {
          this.#log.info('reservation re-established', { relay: r.nodeName })
        }, (err: Error) => this.#log.debug('relay reservation not re-established yet', { relay: r.nodeName, err: err.message }))
      } else if (node.getConnections(r.peerId).length === 0) {
        await node.dial(r.peerId, { signal: AbortSignal.timeout(5000) }).catch(() => {})
      }
    }
  }

  /**
   * Secure identity mode: dials each configured relay not known yet at its
   * address, checks that it is the node it is configured as (whois), pins
   * its PeerID, registers this node's name there, and reserves.
   */
  async #resolveRelays (): Promise<void> {
    const node = this.#node
    const multiaddr = this.#multiaddr
    if (node === undefined || multiaddr === undefined || this.#resolving) return
    this.#resolving = true
    let added = false
    try {
      for (const r of this.#relayNodes) {
        if (r.nodeName === this.#init.nodeName) continue
        let entry = this.#relays.find(x => x.nodeName === r.nodeName)
        if (entry === undefined) {
          const addrs = r.addresses.map(a => multiaddr(tcpAddr(a)))
          try {
            const conn = await node.dial(addrs, { signal: AbortSignal.timeout(10_000) })
            const peerId = conn.remotePeer
            const who = JSON.parse(await this.#ask(node, peerId, WHOIS_PROTOCOL, undefined, AbortSignal.timeout(5000))) as { nodeName?: unknown }
            if (who.nodeName !== r.nodeName) {
              this.#log.warn('the relay at this address is another node: not used', { relay: r.nodeName, says: who.nodeName, addresses: addrs.map(String) })
              await node.hangUp(peerId).catch(() => {})
              continue
            }
            if (!await this.#pin(r.nodeName, peerId.toString())) { await node.hangUp(peerId).catch(() => {}); continue }
            this.#nodeNames.set(peerId.toString(), r.nodeName)
            await node.peerStore.merge(peerId, { multiaddrs: addrs })
            entry = { nodeName: r.nodeName, peerId, addrs }
            this.#log.info('connected to relay', { relay: r.nodeName, peerId: peerId.toString() })
          } catch (err) {
            await this.#relayDialFailed(r.nodeName, addrs, err as Error)
            continue
          }
        }
        // Every pass: a restarted relay has forgotten the names.
        const answer = await this.#ask(node, entry.peerId, REGISTER_PROTOCOL, { nodeName: this.#init.nodeName }, AbortSignal.timeout(5000)).catch((err: Error) => JSON.stringify({ error: err.message }))
        const parsed = JSON.parse(answer) as { error?: string }
        if (parsed.error !== undefined) this.#log.warn('relay refused this node\'s name', { relay: r.nodeName, err: parsed.error })
        // Used (and reserved on) only once registered: a reservation tells peers they can look this node up.
        if (!this.#relays.includes(entry)) { this.#relays.push(entry); added = true }
      }
    } finally {
      this.#resolving = false
    }
    if (added) {
      await this.#keepRelays(node)
      await this.#refreshRelayData(false)
    }
  }

  /** Records a name a peer tells us, when it is that peer's (compat: the PeerID follows from the name). */
  async #learnName (peerId: PeerId, nodeName: string | undefined): Promise<void> {
    if (nodeName === undefined || nodeName === '') return
    if (this.#init.identity?.mode !== 'secure' && (await compatPeerId(nodeName)).toString() !== peerId.toString()) {
      this.#log.warn('a peer gave a node name that is not its own: ignored', { peer: peerId.toString(), nodeName })
      return
    }
    this.#nodeNames.set(peerId.toString(), nodeName)
  }

  /** Responder of `/libp2p/tunnel-discovery/1.0.0`: SUCCESS with our name, as upstream answers. */
  async #serveDiscovery (stream: Stream, remote: PeerId): Promise<void> {
    const { message } = await readMessage(stream, AbortSignal.timeout(5000))
    if (message.type !== MessageType.CONNECT) { stream.abort(new Error('expected CONNECT')); return }
    stream.send(encodeDiscovery({ type: MessageType.SUCCESS, protocol: message.protocol, nodeName: this.#init.nodeName }))
    await stream.close().catch(() => {})
    await this.#learnName(remote, message.nodeName)
  }

  /** Initiator of upstream's discovery handshake: the Go peer maps our name to our PeerID. */
  async #discover (peerId: PeerId): Promise<void> {
    const node = this.#node
    if (node === undefined) return
    const signal = AbortSignal.timeout(5000)
    const stream = await node.dialProtocol(peerId, DISCOVERY_PROTOCOL, { signal, runOnLimitedConnection: true })
    stream.send(encodeDiscovery({ type: MessageType.CONNECT, protocol: 'DHT', nodeName: this.#init.nodeName }))
    const { message } = await readMessage(stream, signal)
    // Upstream resets the stream after the answer.
    stream.abort(new Error('discovery done'))
    if (message.type === MessageType.SUCCESS) await this.#learnName(peerId, message.nodeName)
  }

  /** Relay side of the secure mode's registry: the name a connected, handshake-proven PeerID claims. */
  async #serveRegister (stream: Stream, peerId: string): Promise<void> {
    const name = (JSON.parse(await readStreamLine(stream, AbortSignal.timeout(5000))) as { nodeName?: unknown }).nodeName
    if (typeof name !== 'string' || name === '') throw new Error('no name')
    const connected = new Set((this.#node?.getConnections() ?? []).map(c => c.remotePeer.toString()))
    const holder = [...this.#registered].find(([id, n]) => n === name && id !== peerId)
    let error: string | undefined
    if (holder !== undefined && connected.has(holder[0])) error = `${name} is registered by another connected peer`
    else if (this.#pins !== undefined && !await this.#pin(name, peerId)) error = `${name} is pinned to another PeerID on this relay`
    if (error === undefined) {
      if (holder !== undefined) this.#registered.delete(holder[0])
      this.#registered.set(peerId, name)
      this.#nodeNames.set(peerId, name)
      // Bounded: forget peers that are gone once the table grows.
      if (this.#registered.size > 10_000) for (const id of this.#registered.keys()) if (!connected.has(id)) this.#registered.delete(id)
    } else {
      this.#log.warn('node name registration refused', { node: name, peerId, err: error })
    }
    sendLine(stream, error === undefined ? { ok: true } : { error })
    await stream.close().catch(() => {})
  }

  /** Pins name → PeerID (secure mode); false, with a log line, when the name is pinned to another PeerID. */
  async #pin (nodeName: string, peerId: string): Promise<boolean> {
    const pins = this.#pins
    if (pins === undefined) return true
    const result = await pins.pin(nodeName, peerId)
    if (result === 'conflict') {
      this.#log.warn('PeerID of a pinned node changed: refused (remove its pin if the node was reinstalled)', { node: nodeName, pinned: pins.get(nodeName), offered: peerId, file: this.#init.identity?.pinsFile })
      return false
    }
    if (result === 'new') this.#log.info('peer pinned', { node: nodeName, peerId })
    return true
  }

  /** A node's PeerID, remembered for the peer table: derived (compat), or pinned / asked of the relays (secure). */
  async #peerIdOf (nodeName: string, signal?: AbortSignal): Promise<PeerId> {
    const peerId = await this.#lookUpPeerId(nodeName, signal)
    this.#nodeNames.set(peerId.toString(), nodeName)
    return peerId
  }

  async #lookUpPeerId (nodeName: string, signal?: AbortSignal): Promise<PeerId> {
    if (this.#init.identity?.mode !== 'secure') return await compatPeerId(nodeName)
    const { peerIdFromString } = await import('@libp2p/peer-id')
    const pinned = this.#pins?.get(nodeName)
    if (pinned !== undefined) return peerIdFromString(pinned)
    const node = this.#node
    if (node !== undefined) {
      for (const r of this.#relays) {
        const answer = await this.#ask(node, r.peerId, LOOKUP_PROTOCOL, { nodeName }, signal ?? AbortSignal.timeout(5000)).catch((err: Error) => { this.#log.debug('relay lookup failed', { relay: r.nodeName, node: nodeName, err: err.message }); return '{}' })
        const peerId = (JSON.parse(answer) as { peerId?: unknown }).peerId
        if (typeof peerId !== 'string') continue
        if (!await this.#pin(nodeName, peerId)) throw new TunnelDialError(nodeName, 'its PeerID differs from the pinned one (see the log)')
        return peerIdFromString(peerId)
      }
    }
    throw new TunnelDialError(nodeName, 'no relay knows this node yet (secure identity mode: it registers with the relays when it connects)')
  }

  /** One request line, one answer line, on a new stream to `peerId`. */
  async #ask (node: Libp2p, peerId: PeerId, protocol: string, request: unknown, signal: AbortSignal, targets: Multiaddr[] = []): Promise<string> {
    const stream = await this.#openStream(node, peerId, targets, protocol, signal)
    if (request !== undefined) sendLine(stream, request)
    const line = await readStreamLine(stream, signal)
    stream.close().catch(() => {})
    return line
  }

  /** mDNS: keep the peer's LAN addresses and connect, as upstream does (identify then runs the name exchange with Go peers). */
  #onLanPeer (node: Libp2p, peer: LanPeer): void {
    if (peer.peerId === node.peerId.toString()) return
    const multiaddr = this.#multiaddr as (a: string) => Multiaddr
    // Upstream announces its loopback address too: useless, and on this host it would be ourselves.
    const addrs = peer.addrs.filter(a => !isHostOnly(a))
    let id: PeerId
    let lan: Multiaddr[]
    try {
      id = (this.#peerIdFromString as (id: string) => PeerId)(peer.peerId)
      lan = addrs.map(a => multiaddr(`${a}/p2p/${peer.peerId}`))
    } catch (err) {
      this.#log.debug('unreadable mDNS announcement', { peer: peer.peerId, err: (err as Error).message })
      return
    }
    if (lan.length === 0) return
    const known = this.#lanAddrs.get(peer.peerId)
    this.#lanAddrs.set(peer.peerId, lan)
    if (known === undefined) this.#log.info('peer found on the LAN', { peer: peer.peerId, node: this.#nodeNames.get(peer.peerId), addresses: addrs })
    if (node.getConnections(id).some(c => c.limits === undefined)) return
    node.dial(lan).catch((err: Error) => this.#log.debug('dialing a peer found on the LAN failed', { peer: peer.peerId, err: err.message }))
  }

  /**
   * A peer that advertised the rendezvous on the DHT: connect, as upstream
   * does (its addresses, then circuits through our relays, since it may be
   * behind NAT); identify then runs the name exchange with Go peers.
   */
  #onDhtPeer (node: Libp2p, peer: Libp2pPeerInfo): void {
    const id = peer.id.toString()
    if (!this.#dhtPeers.has(id)) this.#log.info('peer found on the DHT', { peer: id, node: this.#nodeNames.get(id), addresses: peer.multiaddrs.map(a => a.toString()) })
    this.#dhtPeers.add(id)
    if (node.getConnections(peer.id).length > 0) return
    const multiaddr = this.#multiaddr as (a: string) => Multiaddr
    const targets = [
      ...peer.multiaddrs.filter(a => !isHostOnly(a.toString())).map(a => a.toString().includes('/p2p/') ? a : multiaddr(`${a.toString()}/p2p/${id}`)),
      ...this.#circuitsTo(id)
    ]
    if (targets.length === 0) return
    node.dial(targets).catch((err: Error) => this.#log.debug('dialing a peer found on the DHT failed', { peer: id, err: err.message }))
  }

  async stop (): Promise<void> {
    await this.#dht?.stop()
    this.#dht = undefined
    await this.#mdns?.stop()
    this.#mdns = undefined
    clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
    clearInterval(this.#relayDataTimer)
    this.#relayDataTimer = undefined
    const node = this.#node
    this.#node = undefined
    await this.#dataPath?.stop()
    this.#routes.clear()
    await node?.stop()
  }

  async dialTcp (target: DialTarget, signal?: AbortSignal): Promise<Duplex> {
    // One budget (dialTimeoutMs) for the data path and, when it is not there, libp2p.
    const abort = this.#dialSignal(signal)
    const viaData = await this.#dialDataPath(target, abort)
    if (viaData !== undefined) return viaData
    const { stream, rest, peer } = await this.#open(target, 'tcp', abort)
    return streamToDuplex(stream, rest, this.#hearFrom(peer))
  }

  /** The caller's signal, bounded by `dialTimeoutMs`. */
  #dialSignal (signal?: AbortSignal): AbortSignal {
    const timeout = AbortSignal.timeout(this.#init.dialTimeoutMs ?? 10_000)
    return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
  }

  /**
   * The TLS data path when the peer is one of our agents: undefined when it
   * is not (or its data path failed: libp2p carries the connection then).
   */
  async #dialDataPath (target: DialTarget, abort: AbortSignal): Promise<Duplex | undefined> {
    const dataPath = this.#dataPath
    const nodeName = target.nodeName
    if (dataPath === undefined || nodeName === undefined || nodeName === '' || nodeName === this.#init.nodeName) return undefined
    const route = await this.#routeTo(nodeName, abort)
    if (route === undefined) return undefined
    try {
      const { socket } = await dataPath.dial(route, { ip: target.ip, port: target.port }, abort)
      this.#metrics?.streams.inc({ direction: 'outbound', result: 'ok_datapath' })
      return socket
    } catch (err) {
      if ((err as { refused?: boolean }).refused === true) {
        this.#metrics?.streams.inc({ direction: 'outbound', result: 'refused' })
        throw new TunnelDialError(nodeName, (err as Error).message, { cause: err, refused: true })
      }
      if (abort.aborted) throw new TunnelDialError(nodeName, (err as Error).message, { cause: err })
      // Ask again next time: the peer may have moved or restarted on another address.
      this.#routes.delete(nodeName)
      this.#log.debug('data path failed; this connection goes over libp2p', { node: nodeName, err: (err as Error).message })
      return undefined
    }
  }

  /** A peer's data path address and this node's relays; asked over libp2p and cached. */
  async #routeTo (nodeName: string, signal: AbortSignal): Promise<PeerRoute | undefined> {
    const cached = this.#routes.get(nodeName)
    if (cached !== undefined && Date.now() - cached.at < (cached.route !== undefined ? ROUTE_TTL_MS : NO_ROUTE_TTL_MS)) {
      return cached.route === undefined ? undefined : { ...cached.route, relays: this.#relayData }
    }
    const node = this.#node
    if (node === undefined) return undefined
    let answer: { port: number, hosts: string[] } | undefined
    // Not knowing the peer at all is not "no data path": the libp2p dial would fail the same way.
    const peerId = await this.#peerIdOf(nodeName, signal)
    try {
      answer = await this.#askDataPath(node, peerId, this.#dialTargets(nodeName, peerId), signal)
    } catch (err) {
      if (signal.aborted) throw err
      // A Go EdgeMesh (protocol not supported) or an agent with the data path off.
      this.#log.debug('peer has no data path; using libp2p', { node: nodeName, err: (err as Error).message })
      this.#routes.set(nodeName, { route: undefined, at: Date.now() })
      return undefined
    }
    const route: PeerRoute = { nodeName, direct: answer.hosts.map(host => ({ host, port: answer.port })), relays: [] }
    this.#routes.set(nodeName, { route, at: Date.now() })
    return { ...route, relays: this.#relayData }
  }

  async #askDataPath (node: Libp2p, peerId: PeerId, targets: Multiaddr[], signal: AbortSignal): Promise<{ port: number, hosts: string[] }> {
    const text = await this.#ask(node, peerId, DATAPATH_PROTOCOL, undefined, signal, targets)
    const parsed = JSON.parse(text) as { port?: unknown, hosts?: unknown }
    if (typeof parsed.port !== 'number' || !Array.isArray(parsed.hosts)) throw new Error(`unexpected data path answer ${text.slice(0, 100)}`)
    return { port: parsed.port, hosts: parsed.hosts.filter((h): h is string => typeof h === 'string' && isIP(h) !== 0) }
  }

  /**
   * The addresses this node's data path can be reached at: a relay's
   * configured advertise addresses, otherwise the addresses libp2p listens on
   * (loopback only when there is nothing else).
   */
  #dataHosts (): string[] {
    const self = this.#relayNodes.find(r => r.nodeName === this.#init.nodeName)
    const own = (this.#node?.getMultiaddrs() ?? []).map(String).filter(a => !a.includes('/p2p-circuit'))
      .map(a => /^\/ip[46]\/([^/]+)\/tcp\//.exec(a)?.[1]).filter((h): h is string => h !== undefined)
    const routable = own.filter(h => !h.startsWith('127.') && h !== '::1')
    const hosts = [...(self?.addresses.map(a => a.host) ?? []), ...(routable.length > 0 ? routable : own)]
    return [...new Set(hosts)].filter(h => isIP(h) !== 0)
  }

  /**
   * Learns each relay's data path port (over libp2p) and hands the relays to
   * the data path, which parks connections on them. `onlyMissing` asks just
   * the relays not known yet.
   */
  async #refreshRelayData (onlyMissing: boolean): Promise<void> {
    const node = this.#node
    const dataPath = this.#dataPath
    if (node === undefined || dataPath === undefined) return
    const known = new Map(this.#relayData.map(r => [r.nodeName, r]))
    const wanted = this.#relays
    if (onlyMissing && wanted.every(r => known.has(r.nodeName))) return
    const next: Array<{ nodeName: string, address: HostPort }> = []
    await Promise.all(wanted.map(async r => {
      const have = this.#relayData.filter(d => d.nodeName === r.nodeName)
      if (onlyMissing && have.length > 0) { next.push(...have); return }
      try {
        const answer = await this.#askDataPath(node, r.peerId, r.addrs.map(a => a.encapsulate(`/p2p/${r.peerId.toString()}`)), AbortSignal.timeout(5000))
        const config = this.#relayNodes.find(n => n.nodeName === r.nodeName)?.addresses.map(a => a.host) ?? []
        for (const host of new Set([...config, ...answer.hosts])) next.push({ nodeName: r.nodeName, address: { host, port: answer.port } })
      } catch (err) {
        this.#log.debug('relay data path not known yet', { relay: r.nodeName, err: (err as Error).message })
        next.push(...have)
      }
    }))
    // Keep relayNodes' order: it is the order relays are tried in.
    const order = wanted.map(r => r.nodeName)
    next.sort((a, b) => order.indexOf(a.nodeName) - order.indexOf(b.nodeName))
    const changed = JSON.stringify(next) !== JSON.stringify(this.#relayData)
    this.#relayData = next
    if (changed) {
      dataPath.setRelays(next)
      this.#log.info('data path relays', { relays: next.map(r => `${r.nodeName}@${r.address.host}:${r.address.port}`) })
    }
  }

  async dialUdp (target: DialTarget, signal?: AbortSignal): Promise<DatagramChannel> {
    // Framed datagrams between our agents; upstream's plain `udp` for a Go peer, which refuses the framed mode.
    try {
      const { stream, rest } = await this.#open(target, UDP_FRAMED, this.#dialSignal(signal))
      return streamChannel(stream, true, rest)
    } catch (err) {
      if (!(err instanceof TunnelDialError && err.refused)) throw err
      const { stream, rest } = await this.#open(target, 'udp', this.#dialSignal(signal))
      return streamChannel(stream, false, rest)
    }
  }

  /** A proxy stream to the agent on the target's node; `abort` is already bounded by the dial timeout. */
  async #open (target: DialTarget, protocol: string, abort: AbortSignal): Promise<{ stream: Stream, rest: Buffer, peer: string }> {
    const node = this.#node
    const nodeName = target.nodeName
    if (node === undefined) throw new TunnelDialError(nodeName ?? '', 'the tunnel is not running')
    if (nodeName === undefined || nodeName === '') throw new TunnelDialError('', 'the endpoint has no node name')
    const peerId = await this.#peerIdOf(nodeName, abort)
    const targets = this.#dialTargets(nodeName, peerId)
    let stream: Stream
    try {
      stream = await this.#openStream(node, peerId, targets, PROXY_PROTOCOL, abort)
    } catch (err) {
      this.#metrics?.streams.inc({ direction: 'outbound', result: 'dial_failed' })
      throw new TunnelDialError(nodeName, (err as Error).message, { cause: err })
    }
    // No payload before SUCCESS: upstream's reader would drop it.
    stream.send(encodeProxy({ type: MessageType.CONNECT, protocol, nodeName, ip: target.ip, port: target.port }))
    try {
      const { message, rest } = await readMessage(stream, abort)
      if (message.type === MessageType.FAILED) throw Object.assign(new Error(`the agent on ${nodeName} could not reach ${target.ip}:${target.port} (${protocol})`), { refused: true })
      this.#metrics?.streams.inc({ direction: 'outbound', result: 'ok' })
      return { stream, rest, peer: peerId.toString() }
    } catch (err) {
      this.#metrics?.streams.inc({ direction: 'outbound', result: 'refused' })
      stream.abort(err as Error)
      throw new TunnelDialError(nodeName, (err as Error).message, { cause: err, refused: (err as { refused?: boolean }).refused === true })
    }
  }

  /**
   * Where to dial a peer: a relay at its configured addresses, anyone else
   * through every relay's circuit. Not whatever the peer store learned:
   * identify hands us the peer's LAN addresses, and on another site those are
   * unreachable (or another host) and can stall a dial for seconds. libp2p
   * still prefers a direct connection it already has.
   */
  #dialTargets (nodeName: string, peerId: PeerId): Multiaddr[] {
    const multiaddr = this.#multiaddr as (a: string) => Multiaddr
    const relay = this.#relays.find(r => r.nodeName === nodeName)
    if (relay !== undefined) return relay.addrs.map(a => multiaddr(`${a.toString()}/p2p/${peerId.toString()}`))
    const id = peerId.toString()
    return [...(this.#lanAddrs.get(id) ?? []), ...this.#circuitsTo(id)]
  }

  /** Circuits to a peer through each of our relays (other than the peer itself). */
  #circuitsTo (peerId: string): Multiaddr[] {
    const multiaddr = this.#multiaddr as (a: string) => Multiaddr
    return this.#relays.filter(r => r.peerId.toString() !== peerId)
      .flatMap(r => r.addrs.map(a => multiaddr(`${a.toString()}/p2p/${r.peerId.toString()}/p2p-circuit/p2p/${peerId}`)))
  }

  /**
   * Opens a stream. A connection whose relay just died can look open
   * for a while and swallow the stream: if the first try on an existing
   * connection does not answer quickly, drop that connection and dial again
   * (the other relays' circuits, or a direct address). Unless the peer was
   * heard from just now: then the connection is alive but busy (a new
   * stream's frames queue behind the data of the others), and dropping it
   * would cut every stream it carries.
   */
  async #openStream (node: Libp2p, peerId: PeerId, targets: Multiaddr[], protocol: string, signal: AbortSignal): Promise<Stream> {
    const peer = peerId.toString()
    let stream: Stream | undefined
    if (node.getConnections(peerId).length > 0) {
      try {
        stream = await node.dialProtocol(peerId, protocol, { signal: AbortSignal.any([signal, AbortSignal.timeout(STALE_CONNECTION_MS)]), runOnLimitedConnection: true })
      } catch (err) {
        // A peer that answered "not supported" (a Go EdgeMesh asked for the data path) is alive.
        if (signal.aborted || (err as Error).name === 'UnsupportedProtocolError') throw err
        if (performance.now() - (this.#heardAt.get(peer) ?? -Infinity) < STALE_CONNECTION_MS) {
          this.#log.debug('existing connection is busy; waiting for the stream', { peer })
          stream = await node.dialProtocol(peerId, protocol, { signal, runOnLimitedConnection: true })
        } else {
          this.#log.debug('existing connection did not answer; redialing', { peer, err })
          await node.hangUp(peerId).catch(() => {})
        }
      }
    }
    return stream ?? await node.dialProtocol(targets.length > 0 ? targets : peerId, protocol, { signal, runOnLimitedConnection: true })
  }

  /**
   * Notes when data last arrives from a peer on a proxied stream. (Given to
   * the stream's reader, not added as a listener of its own: a listener
   * added before the reader's would take the data the stream has buffered.)
   */
  #hearFrom (peer: string): () => void {
    return () => { this.#heardAt.set(peer, performance.now()) }
  }

  /** The responder: dial the requested ip:port from this node, answer SUCCESS or FAILED, then pipe. */
  async #serveProxy (stream: Stream, peer: string): Promise<void> {
    const { message, rest } = await readMessage(stream, AbortSignal.timeout(10_000))
    if (message.type !== MessageType.CONNECT) { stream.abort(new Error('expected CONNECT')); return }
    if ((message.protocol === 'udp' || message.protocol === UDP_FRAMED) && message.ip !== undefined && message.port !== undefined) {
      try {
        await serveDatagrams(stream, { ip: message.ip, port: message.port }, message.protocol === UDP_FRAMED, Buffer.alloc(0))
      } catch {
        stream.send(encodeProxy({ type: MessageType.FAILED }))
        this.#metrics?.streams.inc({ direction: 'inbound', result: 'target_unreachable' })
        await stream.close().catch(() => {})
        return
      }
      // SUCCESS goes out before any reply datagram: serveDatagrams only sends once the target answers.
      stream.send(encodeProxy({ ...message, type: MessageType.SUCCESS }))
      this.#metrics?.streams.inc({ direction: 'inbound', result: 'ok' })
      if (rest.length > 0) stream.unshift(rest)
      return
    }
    if (message.protocol !== 'tcp' || message.ip === undefined || message.port === undefined) {
      stream.send(encodeProxy({ type: MessageType.FAILED }))
      this.#metrics?.streams.inc({ direction: 'inbound', result: 'unsupported' })
      await stream.close().catch(() => {})
      return
    }
    const socket = connect({ host: message.ip, port: message.port, allowHalfOpen: true, noDelay: true })
    try {
      await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    } catch (err) {
      this.#log.debug('proxy target unreachable', { target: `${message.ip}:${message.port}`, err })
      stream.send(encodeProxy({ type: MessageType.FAILED }))
      this.#metrics?.streams.inc({ direction: 'inbound', result: 'target_unreachable' })
      await stream.close().catch(() => {})
      return
    }
    stream.send(encodeProxy({ ...message, type: MessageType.SUCCESS }))
    this.#metrics?.streams.inc({ direction: 'inbound', result: 'ok' })
    const duplex = streamToDuplex(stream, rest, this.#hearFrom(peer))
    socket.on('error', () => duplex.destroy())
    duplex.on('error', () => socket.destroy())
    this.#copied?.track(duplex)
    this.#copied?.track(socket)
    duplex.pipe(socket)
    socket.pipe(duplex)
  }
}

/**
 * Why a dial to a relay failed. A peer with another PSK sometimes answers the
 * garbled handshake with an error and sometimes just waits: when the dial
 * failed but a plain TCP connect succeeds, the handshake is what failed.
 */
async function classifyFailure (err: Error, addrs: readonly Multiaddr[]): Promise<'psk' | 'unreachable'> {
  if (isHandshakeFailure(err)) return 'psk'
  for (const a of addrs) {
    const m = /^\/(?:ip4|ip6|dns4)\/([^/]+)\/tcp\/(\d+)/.exec(a.toString())
    if (m === null) continue
    const open = await new Promise<boolean>(resolve => {
      const s = connect({ host: m[1] as string, port: Number(m[2]) })
      const done = (ok: boolean): void => { clearTimeout(t); s.destroy(); resolve(ok) }
      const t = setTimeout(() => done(false), 1500)
      s.once('connect', () => done(true))
      s.once('error', () => done(false))
    })
    if (open) return 'psk'
  }
  return 'unreachable'
}

function isHandshakeFailure (err: Error): boolean {
  // pnet with another key garbles the Noise handshake; the peer then looks like something else entirely.
  return /encrypt|decrypt|handshake|protocol selection|multistream|unexpected end|invalid|mac/i.test(`${err.name} ${err.message} ${String((err as { cause?: Error }).cause?.message ?? '')}`)
}

/** Noise on libsodium where the addon loads; undefined keeps the package's own crypto. */
async function loadNoiseCrypto (): Promise<ICryptoInterface | undefined> {
  const sodium = await loadSodium()
  if (sodium === undefined) return undefined
  const [{ sodiumNoiseCrypto }, { defaultCrypto }] = await Promise.all([import('./noise-crypto.ts'), import('@chainsafe/libp2p-noise/crypto')])
  return sodiumNoiseCrypto(sodium, defaultCrypto)
}
