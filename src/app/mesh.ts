/**
 * The mesh as the composition root builds it: the tunnel (control plane:
 * names, relays, discovery) and the two peer transports side by side, with
 * the settings from the config and the watcher of `relayNodes` edits.
 */
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import type { Registry } from 'prom-client'
import { LifecycleGroup } from '../lifecycle/group.ts'
import { startFailure } from '../errors.ts'
import type { Component, StopOptions } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { EdgeTunnelConfig } from '../config/schema.ts'
import { relayEndpoints } from '../config/relays.ts'
import { loadConfigFile } from '../config/load.ts'
import { TunnelIdentityError } from '../tunnel/errors.ts'
import { EdgeTunnel } from '../tunnel/tunnel.ts'
import type { EdgeTunnelInit, PeerInfo, RelayNode, RelayProbe } from '../tunnel/tunnel.ts'
import { RelayWatcher } from '../tunnel/relay-watcher.ts'
import { DataPath } from '../datapath/datapath.ts'
import type { DataPathInit } from '../datapath/datapath.ts'
import { DataPathTransport } from '../datapath/transport.ts'
import { PeerDialer } from '../mesh/index.ts'
import type { DatagramChannel, DialOptions, DialTarget, EndpointDialer, PeerChannels, PeerTransport } from '../mesh/index.ts'
import type { CopiedStreams } from '../net/index.ts'
import { DirectPathMetrics, DirectPaths, NatDiscovery, NatMetrics, StunReflector } from '../nat/index.ts'
import type { DirectPathsInit } from '../nat/index.ts'

/** What `createMesh` takes: the tunnel's settings, our data path's, and one dial budget. */
export type MeshInit = EdgeTunnelInit & {
  /** The TLS data path between our agents (needs the PSK); undefined keeps every connection on libp2p. */
  dataPath?: Pick<DataPathInit, 'port' | 'poolSize' | 'parkedPerRelay' | 'relayLimits'> | undefined
  /** Punched UDP paths between our agents (needs the data path and NAT checks). */
  holePunch?: Pick<DirectPathsInit, 'port' | 'portFile' | 'punchTimeoutMs' | 'retryMs' | 'keepaliveMs' | 'portMapping'> | undefined
  /** One budget for a proxied dial, every transport it tries included. @default 10000 */
  dialTimeoutMs?: number
  /** How often a tunnel whose state files could not be used is started again. @default 30000 */
  stateRetryMs?: number
  /** NAT discovery: relays answer STUN on UDP listenPort, every node learns its NAT from them. */
  nat?: { intervalMs?: number, timeoutMs?: number } | undefined
}

/**
 * The mesh: the tunnel (control plane: names, relays, discovery) and the two
 * peer transports, side by side. Our TLS data path carries proxied TCP
 * between our agents; upstream's libp2p proxy protocol carries UDP, the
 * connections to Go agents, and TCP whenever the data path fails.
 */
export class Mesh extends LifecycleGroup implements EndpointDialer {
  readonly tunnel: EdgeTunnel
  readonly dataPath: DataPath | undefined
  readonly dialer: PeerDialer
  /** Connections to other agents for a module's own traffic; undefined without the data path. */
  readonly channels: PeerChannels | undefined
  /** What NAT this node is behind, from the relays' reflectors; undefined without NAT discovery. */
  readonly nat: NatDiscovery | undefined
  readonly directPaths: DirectPaths | undefined
  readonly #log: Logger
  readonly #retryMs: number
  #failed: TunnelIdentityError | undefined
  #retry: NodeJS.Timeout | undefined
  #stopped = false

  constructor (parts: { tunnel: EdgeTunnel, dataPath: DataPath | undefined, dialer: PeerDialer, channels?: PeerChannels | undefined, reflector?: StunReflector | undefined, nat?: NatDiscovery | undefined, directPaths?: DirectPaths | undefined }, log: Logger, retryMs = 30_000) {
    // The data path first: the tunnel tells peers where it listens. The punching socket before the
    // NAT checks: they run on it, so the mapping they find is the one punched paths use.
    // Named as the tunnel module: readiness, start errors and logs speak of the tunnel, as the config does.
    super('tunnel', [parts.dataPath, parts.tunnel, parts.reflector, parts.directPaths, parts.nat].filter(c => c !== undefined), log)
    this.tunnel = parts.tunnel
    this.dataPath = parts.dataPath
    this.dialer = parts.dialer
    this.channels = parts.channels
    this.nat = parts.nat
    this.directPaths = parts.directPaths
    this.#log = log
    this.#retryMs = retryMs
  }

  get isRelay (): boolean {
    return this.tunnel.isRelay
  }

  /**
   * A tunnel whose state files cannot be used (a corrupt or world-readable
   * key, unreadable pins) does not take the node down: DNS and the proxy keep
   * serving, readiness names the tunnel, and the start is retried until the
   * files are fixed. Any other failure stops the agent, rolled back.
   */
  override async start (): Promise<void> {
    this.#stopped = false
    try {
      await super.start()
    } catch (err) {
      const cause = startFailure(err)
      if (!(cause instanceof TunnelIdentityError)) throw cause
      this.#degrade(cause)
    }
  }

  override async stop (options?: StopOptions): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#retry)
    this.#retry = undefined
    await super.stop(options)
  }

  override isReady (): boolean {
    return this.#failed === undefined && super.isReady()
  }

  /** Why the tunnel is not running, when its state files keep it from starting. */
  failure (): string | undefined {
    return this.#failed?.message
  }

  #degrade (err: TunnelIdentityError): void {
    if (this.#failed?.message !== err.message) {
      this.#log.error('tunnel not started: its state file cannot be used; DNS and the proxy keep serving, endpoints on other nodes are unreachable until it is fixed', { file: err.file, err: err.message, retryInSeconds: this.#retryMs / 1000 })
    }
    this.#failed = err
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      if (this.#stopped) return
      super.start().then(() => {
        this.#failed = undefined
        this.#log.info('tunnel started after its state file was fixed', { file: err.file })
      }, (e: unknown) => {
        const cause = startFailure(e)
        if (!this.#stopped && cause instanceof TunnelIdentityError) { this.#degrade(cause); return }
        this.#log.error('tunnel start failed', { err: cause })
      })
    }, this.#retryMs)
    this.#retry.unref()
  }

  peerId (): string | undefined {
    return this.tunnel.peerId()
  }

  addresses (): string[] {
    return this.tunnel.addresses()
  }

  async dialTcp (target: DialTarget, signal?: AbortSignal, options?: DialOptions): Promise<Duplex> {
    return await this.dialer.dialTcp(target, signal, options)
  }

  async dialUdp (target: DialTarget, signal?: AbortSignal): Promise<DatagramChannel> {
    return await this.dialer.dialUdp(target, signal)
  }

  /** Connected peers, with the path each one's latest data path connection took. */
  peers (): PeerInfo[] {
    const dataPeers = new Map((this.dataPath?.peers() ?? []).map(p => [p.nodeName, p]))
    return this.tunnel.peers().map(p => {
      const d = p.nodeName !== undefined ? dataPeers.get(p.nodeName) : undefined
      return d === undefined ? p : { ...p, dataPath: d.path, ...(d.via !== undefined ? { dataPathVia: d.via } : {}) }
    })
  }

  async probeRelays (timeoutMs?: number): Promise<RelayProbe[]> {
    return await this.tunnel.probeRelays(timeoutMs)
  }

  async updateRelays (relayNodes: readonly RelayNode[]): Promise<void> {
    await this.tunnel.updateRelays(relayNodes)
  }
}

export function createMesh (deps: { logger: Logger, metrics: Registry, copied?: CopiedStreams | undefined }, init: MeshInit): Mesh {
  const log = deps.logger
  let dataPath: DataPath | undefined
  if (init.dataPath !== undefined && init.identity?.mode === 'secure') {
    // Its TLS keys come from the PSK and node names only: any PSK holder could claim a name there.
    log.warn('the TLS data path authenticates with the PSK only, not node keys: with identity: secure, proxied connections stay on libp2p')
  } else if (init.dataPath !== undefined && init.pskFile === undefined) {
    log.warn('the TLS data path needs the PSK (psk.enable): proxied connections stay on libp2p')
  } else if (init.dataPath !== undefined) {
    dataPath = new DataPath(deps, {
      ...init.dataPath,
      nodeName: init.nodeName,
      listenHost: init.listenAddresses?.[0] ?? '0.0.0.0',
      pskFile: init.pskFile,
      isRelay: init.relayNodes.some(r => r.nodeName === init.nodeName),
      // A node that reserves no relay slot on libp2p (the gateway: client only) parks nothing on the data path either.
      park: init.reserve !== false
    })
  }
  const tunnel = new EdgeTunnel({ ...deps, dataPath }, init)
  const routes = tunnel.dataPathRoutes
  const dataTransport = dataPath !== undefined && routes !== undefined ? new DataPathTransport({ dataPath, routes, logger: log }) : undefined
  const transports: PeerTransport[] = [...(dataTransport !== undefined ? [dataTransport] : []), tunnel.proxyTransport]
  const channels: PeerChannels | undefined = dataPath !== undefined && dataTransport !== undefined
    ? {
        open: async (nodeName, channel, signal) => await dataTransport.openChannel(nodeName, channel, signal),
        handle: (channel, handler) => { dataPath.handleChannel(channel, handler) }
      }
    : undefined
  const dialer = new PeerDialer({ logger: log, transports }, { dialTimeoutMs: init.dialTimeoutMs })
  let reflector: StunReflector | undefined
  let nat: NatDiscovery | undefined
  let directPaths: DirectPaths | undefined
  if (init.nat !== undefined) {
    const metrics = new NatMetrics(deps.metrics)
    const isRelay = init.relayNodes.some(r => r.nodeName === init.nodeName)
    if (isRelay) reflector = new StunReflector({ logger: log, metrics }, { host: init.listenAddresses?.[0] ?? '0.0.0.0', port: init.listenPort })
    // A relay asks the other relays: its own reflector would only tell it its own address.
    const others = init.relayNodes.filter(r => r.nodeName !== init.nodeName)
    // Relays are public: peers reach them directly, and they reach nodes through parked connections.
    if (others.length > 0 && !isRelay && init.holePunch !== undefined && dataPath !== undefined && dataTransport !== undefined && init.pskFile !== undefined) {
      const checks = (): NatDiscovery | undefined => nat
      const punching = new DirectPaths({
        logger: log,
        metrics: new DirectPathMetrics(deps.metrics),
        nat: () => checks()?.report(),
        rendezvous: {
          openChannel: async (nodeName, channel, signal) => await dataTransport.openChannel(nodeName, channel, signal),
          handleChannel: (channel, handler) => { dataPath.handleChannel(channel, handler) },
          serve: stream => { dataPath.serveStream(stream) },
          reflect: async (localPort, signal) => await dataPath.reflect(localPort, signal)
        }
      }, { ...init.holePunch, nodeName: init.nodeName, pskFile: init.pskFile, host: init.listenAddresses?.[0] ?? '0.0.0.0' })
      dataPath.usePunchedPaths(punching)
      directPaths = punching
    }
    if (others.length > 0) nat = new NatDiscovery({ logger: log, metrics }, { ...init.nat, relays: others, datagrams: () => directPaths?.datagrams() })
  }
  return new Mesh({ tunnel, dataPath, dialer, channels, reflector, nat, directPaths }, log, init.stateRetryMs)
}

/** The mesh as the agent's config describes it. */
export function meshInit (t: EdgeTunnelConfig, nodeName: string, stateDir: string, podCidrs: readonly string[] = []): MeshInit {
  return {
    nodeName,
    podCidrs,
    identity: t.identity === 'secure' ? { mode: 'secure', keyFile: join(stateDir, 'tunnel-identity.key'), pinsFile: join(stateDir, 'tunnel-peers.json') } : undefined,
    listenPort: t.listenPort,
    relayNodes: relayEndpoints(t.relayNodes, t.listenPort),
    pskFile: t.psk.enable ? t.psk.path : undefined,
    maxInboundStreams: t.tunnelLimitConfig.enable ? t.tunnelLimitConfig.tunnelBaseStreamIn : undefined,
    heartbeatMs: t.heartbeatPeriod * 1000,
    mdns: t.mdns.enable ? { serviceName: t.rendezvous } : undefined,
    dht: t.dht.enable ? { rendezvous: t.rendezvous, findIntervalMs: t.finderPeriod * 1000 } : undefined,
    nat: {},
    dataPath: t.dataPath.enable
      ? { port: t.dataPath.port === 0 ? undefined : t.dataPath.port, poolSize: t.dataPath.poolSize, parkedPerRelay: t.dataPath.parkedPerRelay, relayLimits: t.dataPath.relayLimits }
      : undefined,
    holePunch: t.dataPath.enable && t.dataPath.holePunch.enable ? { port: t.dataPath.holePunch.port, portFile: join(stateDir, 'punch-port'), portMapping: t.dataPath.holePunch.portMapping } : undefined
  }
}

/** Applies `relayNodes` edits of the config file to the running mesh. */
export function relayWatcher (file: string, mesh: Mesh, deps: { logger: Logger, env: NodeJS.ProcessEnv }): Component {
  return new RelayWatcher({ logger: deps.logger }, {
    file,
    read: async f => {
      const t = (await loadConfigFile('agent', f, { env: deps.env })).config.modules.edgeTunnel
      return relayEndpoints(t.relayNodes, t.listenPort)
    },
    apply: async relays => { await mesh.updateRelays(relays) }
  })
}
