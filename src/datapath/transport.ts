/**
 * The data path as a peer transport: used for a peer that advertises a data
 * path (one of our agents), skipped for one that does not (a Go EdgeMesh).
 * Where a peer's data path listens is learned by the tunnel's control plane.
 */
import type { Duplex } from 'node:stream'
import type { Logger } from '../observability/logger.ts'
import type { DialOptions, PeerTarget, PeerTransport } from '../mesh/endpoint-dialer.ts'
import { markEarly } from '../mesh/early.ts'
import { EndpointRefusedError } from '../mesh/errors.ts'
import type { DataPath, PeerRoute } from './datapath.ts'

/** Where peers' data paths are: answered by the tunnel over libp2p, and cached there. */
export interface DataPathRoutes {
  /** The peer's addresses and this node's relays; undefined when the peer has no data path. */
  routeTo (nodeName: string, signal: AbortSignal): Promise<PeerRoute | undefined>
  /** Drops a cached route after a failure: the peer may have moved or restarted. */
  forget (nodeName: string): void
}

export class DataPathTransport implements PeerTransport {
  readonly name = 'datapath'
  readonly #dataPath: DataPath
  readonly #routes: DataPathRoutes
  readonly #log: Logger

  constructor (deps: { dataPath: DataPath, routes: DataPathRoutes, logger: Logger }) {
    this.#dataPath = deps.dataPath
    this.#routes = deps.routes
    this.#log = deps.logger
  }

  async dialTcp (target: PeerTarget, signal: AbortSignal, options?: DialOptions): Promise<Duplex | undefined> {
    const route = await this.#routes.routeTo(target.nodeName, signal)
    if (route === undefined) {
      // No data path there (any more): the status must not show the one it had.
      this.#dataPath.forgetPeer(target.nodeName)
      return undefined
    }
    const failed = (err: unknown): never => {
      if (err instanceof EndpointRefusedError || signal.aborted) throw err
      this.#routes.forget(target.nodeName)
      this.#dataPath.forgetPeer(target.nodeName)
      this.#log.debug('data path failed', { node: target.nodeName, err: (err as Error).message })
      throw err
    }
    try {
      const endpoint = { ip: target.ip, port: target.port }
      if (options?.early !== true) return (await this.#dataPath.dial(route, endpoint, signal)).socket
      const conn = await this.#dataPath.dialEarly(route, endpoint, signal)
      return markEarly(conn.socket, conn.answered.catch(failed))
    } catch (err) {
      return failed(err)
    }
  }

  /**
   * A channel to the agent on `nodeName` (see DataPath.openChannel); undefined
   * when that node has no data path (a Go EdgeMesh agent).
   */
  async openChannel (nodeName: string, channel: string, signal: AbortSignal): Promise<Duplex | undefined> {
    const route = await this.#routes.routeTo(nodeName, signal)
    if (route === undefined) return undefined
    try {
      return (await this.#dataPath.openChannel(route, channel, signal)).socket
    } catch (err) {
      if (!(err instanceof EndpointRefusedError) && !signal.aborted) this.#routes.forget(nodeName)
      throw err
    }
  }
}
