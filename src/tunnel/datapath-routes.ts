/**
 * The data path's control plane, over libp2p: where each peer's data path
 * listens (asked with `/edgemesh/datapath/1.0.0` and cached), and where the
 * relays' data paths are (handed to the data path, which parks on them).
 * A Go EdgeMesh does not speak the protocol and keeps the libp2p proxy.
 */
import { isIP } from 'node:net'
import type { Server } from 'node:net'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { RepeatingTask } from '@libp2p/utils'
import type { Logger } from '../observability/logger.ts'
import type { DataPathRoutes } from '../datapath/transport.ts'
import type { HostPort, PeerRoute } from '../datapath/datapath.ts'
import type { RelayEntry, RelayNode } from './relays.ts'
import { closeQuietly } from './peer-directory.ts'
import { inCidr } from '../net/ipv4.ts'

/** Ours: where a node's TLS data path listens (`{"port":…,"hosts":[…]}`). */
export const DATAPATH_PROTOCOL = '/edgemesh/datapath/1.0.0'
/** How long a peer's data path address is trusted, and how long a peer without one is not asked again. */
const ROUTE_TTL_MS = 60_000
const NO_ROUTE_TTL_MS = 5 * 60_000
/** How often relays whose data path is not known yet are asked again. */
const RELAY_RETRY_MS = 5000

/** The data path as the tunnel sees it: where it listens, and the relays it should park on. */
export interface DataPathEndpoint {
  port (): number
  setRelays (relays: Array<{ nodeName: string, address: HostPort }>): void
  /** Serve on the tunnel's TCP listeners as well (one port per node); returns how to stop. */
  shareTunnelPort (servers: readonly Server[]): () => void
}

/** What the routes need from the tunnel. */
export interface RoutesHost {
  node (): Libp2p | undefined
  ask (peerId: PeerId, protocol: string, request: unknown, signal: AbortSignal, targets?: string[]): Promise<string>
  peerIdOf (nodeName: string, signal: AbortSignal): Promise<PeerId>
  dialTargets (nodeName: string, peerId: PeerId): string[]
  relays (): readonly RelayEntry[]
  configuredRelays (): readonly RelayNode[]
  /** This node's configured advertise addresses when it is a relay. */
  ownAddresses (): ReadonlyArray<{ host: string }>
  nodeName: string
  /** Pod CIDRs of the edge CNI: an address there is a pod's (reached through the mesh itself), never a node's. */
  podCidrs: readonly string[]
}

export class DataPathDirectory implements DataPathRoutes {
  readonly #log: Logger
  readonly #host: RoutesHost
  readonly #dataPath: DataPathEndpoint
  readonly #routes = new Map<string, { route: PeerRoute | undefined, at: number }>()
  /** Nodes already warned about for having no data path. */
  readonly #toldNoDataPath = new Set<string>()
  #relayData: Array<{ nodeName: string, address: HostPort }> = []
  #retry: RepeatingTask | undefined

  constructor (deps: { logger: Logger, host: RoutesHost, dataPath: DataPathEndpoint }) {
    this.#log = deps.logger
    this.#host = deps.host
    this.#dataPath = deps.dataPath
  }

  /** Answers peers' questions, and learns the relays' data paths until each answered. */
  async start (node: Libp2p): Promise<void> {
    await node.handle(DATAPATH_PROTOCOL, (stream) => {
      // frames: this node keeps its connections for the next request (src/datapath/frames.ts); older agents leave it out.
      stream.send(Buffer.from(JSON.stringify({ port: this.#dataPath.port(), hosts: this.#dataHosts(node), frames: 1 }) + '\n'))
      closeQuietly(stream, this.#log)
    }, { runOnLimitedConnection: true })
    this.refreshRelays(false).catch((err: Error) => this.#log.debug('relay data paths not learned', { err: err.message }))
    const { repeatingTask } = await import('@libp2p/utils')
    this.#retry = repeatingTask(async () => {
      await this.refreshRelays(true).catch((err: Error) => this.#log.debug('relay data paths not learned', { err: err.message }))
    }, RELAY_RETRY_MS)
    this.#retry.start()
  }

  stop (): void {
    this.#retry?.stop()
    this.#retry = undefined
    this.#routes.clear()
  }

  async routeTo (nodeName: string, signal: AbortSignal): Promise<PeerRoute | undefined> {
    if (nodeName === this.#host.nodeName) return undefined
    const cached = this.#routes.get(nodeName)
    if (cached !== undefined && Date.now() - cached.at < (cached.route !== undefined ? ROUTE_TTL_MS : NO_ROUTE_TTL_MS)) {
      return cached.route === undefined ? undefined : { ...cached.route, relays: this.#relayData }
    }
    if (this.#host.node() === undefined) return undefined
    // Not knowing the peer at all is not "no data path": the libp2p dial would fail the same way.
    const peerId = await this.#host.peerIdOf(nodeName, signal)
    let answer: { port: number, hosts: string[], frames: boolean }
    try {
      answer = await this.#ask(peerId, this.#host.dialTargets(nodeName, peerId), signal)
    } catch (err) {
      if (signal.aborted) throw err
      // A Go EdgeMesh (protocol not supported) or an agent with the data path off: said once per node.
      const fields = { node: nodeName, err: (err as Error).message }
      if (this.#toldNoDataPath.has(nodeName)) this.#log.debug('peer has no data path; using libp2p', fields)
      else {
        this.#toldNoDataPath.add(nodeName)
        this.#log.warn('peer has no data path; its proxied connections use libp2p', { ...fields, hint: 'a Go EdgeMesh agent, or modules.edgeTunnel.dataPath.enable: false (or identity: secure) on that node' })
      }
      this.#routes.set(nodeName, { route: undefined, at: Date.now() })
      return undefined
    }
    const route: PeerRoute = { nodeName, direct: answer.hosts.filter(h => !this.#isPod(h)).map(host => ({ host, port: answer.port })), relays: [], frames: answer.frames }
    this.#routes.set(nodeName, { route, at: Date.now() })
    return { ...route, relays: this.#relayData }
  }

  forget (nodeName: string): void {
    this.#routes.delete(nodeName)
  }

  /**
   * Learns each relay's data path port and hands the relays to the data
   * path. `onlyMissing` asks just the relays not known yet.
   */
  async refreshRelays (onlyMissing: boolean): Promise<void> {
    if (this.#host.node() === undefined) return
    const wanted = this.#host.relays()
    const known = new Set(this.#relayData.map(r => r.nodeName))
    if (onlyMissing && wanted.every(r => known.has(r.nodeName))) return
    const next: Array<{ nodeName: string, address: HostPort }> = []
    await Promise.all(wanted.map(async r => {
      const have = this.#relayData.filter(d => d.nodeName === r.nodeName)
      if (onlyMissing && have.length > 0) { next.push(...have); return }
      try {
        const answer = await this.#ask(r.peerId, r.addrs.map(a => `${a.toString()}/p2p/${r.peerId.toString()}`), AbortSignal.timeout(5000))
        const config = this.#host.configuredRelays().find(n => n.nodeName === r.nodeName)?.addresses.map(a => a.host) ?? []
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
      this.#dataPath.setRelays(next)
      this.#log.info('data path relays', { relays: next.map(r => `${r.nodeName}@${r.address.host}:${r.address.port}`) })
    }
  }

  async #ask (peerId: PeerId, targets: string[], signal: AbortSignal): Promise<{ port: number, hosts: string[], frames: boolean }> {
    const text = await this.#host.ask(peerId, DATAPATH_PROTOCOL, undefined, signal, targets)
    const parsed = JSON.parse(text) as { port?: unknown, hosts?: unknown, frames?: unknown }
    if (typeof parsed.port !== 'number' || !Array.isArray(parsed.hosts)) throw new Error(`unexpected data path answer ${text.slice(0, 100)}`)
    return { port: parsed.port, hosts: parsed.hosts.filter((h): h is string => typeof h === 'string' && isIP(h) !== 0), frames: parsed.frames === 1 }
  }

  /**
   * Where this node's data path can be reached: a relay's configured
   * advertise addresses, otherwise the addresses libp2p listens on
   * (loopback only when there is nothing else).
   */
  #dataHosts (node: Libp2p): string[] {
    const own = node.getMultiaddrs().map(String).filter(a => !a.includes('/p2p-circuit'))
      .map(a => /^\/ip[46]\/([^/]+)\/tcp\//.exec(a)?.[1]).filter((h): h is string => h !== undefined)
    const routable = own.filter(h => !h.startsWith('127.') && h !== '::1')
    const hosts = [...this.#host.ownAddresses().map(a => a.host), ...(routable.length > 0 ? routable : own)]
    return [...new Set(hosts)].filter(h => isIP(h) !== 0 && !this.#isPod(h))
  }

  /** A pod's address (the edge CNI's bridge has one): a data path connection there would travel through the mesh it is part of. */
  #isPod (host: string): boolean {
    return this.#host.podCidrs.some(c => inCidr(host, c))
  }
}
