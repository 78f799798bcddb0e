/**
 * Upstream's SOCKS5 proxy (`edgeProxy.socks5Proxy`): reach a node by its
 * name, e.g. `ssh -o "ProxyCommand nc -X 5 -x 169.254.96.16:10800 %h %p"
 * user@edge-node-1`. A CONNECT to domain `<nodeName>` goes through the tunnel
 * to that node's agent, which connects to the node's address (InternalIP from
 * the API; its loopback when the services come from a standalone file).
 *
 * Beyond upstream: full reads of the handshake, per-connection state, and
 * SOCKS error replies (upstream closes silently): 0x04 for an unknown node,
 * 0x05 when the node's agent could not connect, 0x07 / 0x08 for commands and
 * address types other than CONNECT to a name.
 */
import type { Server, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Counter } from 'prom-client'
import type { Registry } from 'prom-client'
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import type { EndpointDialer } from '../mesh/endpoint-dialer.ts'
import { EndpointRefusedError } from '../mesh/errors.ts'
import { splice } from '../net/splice.ts'
import { refuse } from '../net/refuse.ts'
import { parseGreeting, parseRequest } from './socks5-wire.ts'
import type { Parsed } from './socks5-wire.ts'

const net = process.getBuiltinModule('node:net')

export const SocksReply = { OK: 0x00, FAILURE: 0x01, HOST_UNREACHABLE: 0x04, REFUSED: 0x05, COMMAND_NOT_SUPPORTED: 0x07, ADDRESS_NOT_SUPPORTED: 0x08 } as const

export interface Socks5Init {
  listenIp: string
  port: number
  nodeName: string
  /** How long the greeting and request may take. @default 10000 */
  handshakeTimeoutMs?: number
}

export interface Socks5Deps {
  logger: Logger
  metrics: Registry
  dialer: EndpointDialer
  /**
   * A node's address: its IP, null when the API says there is no such node,
   * undefined when no API is there to ask (the node's loopback is used).
   */
  nodeAddress: (nodeName: string) => Promise<string | null | undefined>
  /** Told about every stream copied, so their buffers are reclaimed early. */
  copied?: CopiedStreams
  /** Clients allowed (the node's own, see net/local-sources.ts). @default everyone */
  clients?: { isLocal: (address: string) => boolean }
}

/** Reads exactly `n` bytes from a paused socket. */
async function readExactly (socket: Socket, n: number, signal: AbortSignal): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    const done = (err?: Error, buf?: Buffer): void => {
      socket.off('readable', onReadable)
      socket.off('end', onEnd)
      signal.removeEventListener('abort', onAbort)
      if (err !== undefined) reject(err)
      else resolve(buf as Buffer)
    }
    const onReadable = (): void => {
      const buf = socket.read(n) as Buffer | null
      // After the client's FIN, read() hands over what is left (fewer bytes) and 'end' may have passed already.
      if (buf !== null) done(buf.length < n ? new Error('closed during the SOCKS handshake') : undefined, buf)
      else if (socket.readableEnded) done(new Error('closed during the SOCKS handshake'))
    }
    const onEnd = (): void => done(new Error('closed during the SOCKS handshake'))
    const onAbort = (): void => done(new Error('SOCKS handshake timed out'))
    socket.on('readable', onReadable)
    socket.once('end', onEnd)
    signal.addEventListener('abort', onAbort, { once: true })
    onReadable()
  })
}

/** Reads one handshake message, exactly as many bytes as it takes: what follows is the client's data. */
async function readMessage<T> (socket: Socket, parse: (buf: Buffer) => Parsed<T>, signal: AbortSignal): Promise<T> {
  let buf = Buffer.alloc(0)
  for (;;) {
    const parsed = parse(buf)
    if ('value' in parsed) return parsed.value
    buf = Buffer.concat([buf, await readExactly(socket, parsed.need - buf.length, signal)])
  }
}

function reply (code: number): Buffer {
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
}

/** SOCKS5 metrics (`edgemesh_socks5_*`). */
export class Socks5Metrics {
  readonly connections: Counter<'result'>

  constructor (registry: Registry) {
    this.connections = new Counter({ name: 'edgemesh_socks5_connections_total', help: 'SOCKS5 connections, by result (ok, unknown_node, refused, failed, unsupported, bad_handshake, remote_source: a client that is not on this node).', labelNames: ['result'], registers: [registry] })
  }
}

export class Socks5Server implements Component {
  readonly name = 'socks5'
  readonly #deps: Socks5Deps
  readonly #init: Socks5Init
  readonly #connections: Counter<'result'>
  readonly #sockets = new Set<Socket>()
  #server: Server | undefined

  constructor (deps: Socks5Deps, init: Socks5Init) {
    this.#deps = deps
    this.#init = init
    this.#connections = new Socks5Metrics(deps.metrics).connections
  }

  isReady (): boolean {
    return this.#server !== undefined
  }

  /** The bound port (the configured one, or the one picked for port 0). */
  port (): number {
    const a = this.#server?.address()
    return typeof a === 'object' && a !== null ? a.port : this.#init.port
  }

  async start (): Promise<void> {
    if (this.#server !== undefined) return
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, s => { this.#accept(s) })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#init.port, this.#init.listenIp, () => { server.off('error', reject); resolve() })
    })
    this.#server = server
    this.#deps.logger.info('socks5 proxy listening', { address: `${this.#init.listenIp}:${this.port()}` })
  }

  async stop (): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (server === undefined) return
    for (const s of this.#sockets) s.destroy()
    await new Promise(resolve => server.close(resolve))
  }

  #accept (socket: Socket): void {
    // A host off the node (routing the bridge address via it) must not reach other nodes through it.
    if (this.#deps.clients !== undefined && !this.#deps.clients.isLocal(socket.remoteAddress ?? '')) {
      this.#connections.inc({ result: 'remote_source' })
      socket.destroy()
      return
    }
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    socket.on('error', () => {})
    this.#serve(socket).catch((err: Error) => {
      this.#connections.inc({ result: 'bad_handshake' })
      this.#deps.logger.debug('socks5 handshake failed', { from: socket.remoteAddress, err: err.message })
      socket.destroy()
    })
  }

  async #serve (socket: Socket): Promise<void> {
    const timeout = AbortSignal.timeout(this.#init.handshakeTimeoutMs ?? 10_000)
    const { methods } = await readMessage(socket, parseGreeting, timeout)
    if (!methods.includes(0x00)) {
      // Only "no authentication": the port listens on the node's own bridge address.
      refuse(socket, Buffer.from([0x05, 0xff]))
      this.#connections.inc({ result: 'unsupported' })
      return
    }
    socket.write(Buffer.from([0x05, 0x00]))
    const { command, host, port } = await readMessage(socket, parseRequest, timeout)
    if (command !== 0x01 || host === undefined) {
      refuse(socket, reply(command !== 0x01 ? SocksReply.COMMAND_NOT_SUPPORTED : SocksReply.ADDRESS_NOT_SUPPORTED))
      this.#connections.inc({ result: 'unsupported' })
      return
    }
    await this.#connect(socket, host, port)
  }

  async #connect (socket: Socket, nodeName: string, port: number): Promise<void> {
    const self = nodeName === this.#init.nodeName
    let ip: string | null | undefined
    try {
      ip = await this.#deps.nodeAddress(nodeName)
    } catch (err) {
      this.#deps.logger.warn('socks5: node lookup failed', { node: nodeName, err })
      ip = undefined
    }
    if (ip === null) {
      refuse(socket, reply(SocksReply.HOST_UNREACHABLE))
      this.#connections.inc({ result: 'unknown_node' })
      this.#deps.logger.info('socks5: no such node', { node: nodeName })
      return
    }
    // Never another node's loopback: its loopback-only services (the status server among them) are not
    // for the mesh. Without a node address (no API server) only this node can be reached.
    if (!self && (ip === undefined || isLoopback(ip))) {
      refuse(socket, reply(SocksReply.HOST_UNREACHABLE))
      this.#connections.inc({ result: 'unknown_node' })
      this.#deps.logger.info('socks5: no routable address for this node', { node: nodeName, address: ip ?? '(unknown: no API server)' })
      return
    }
    let upstream: Duplex
    try {
      upstream = await this.#deps.dialer.dialTcp({ ip: ip ?? '127.0.0.1', port, nodeName: self ? undefined : nodeName, service: 'socks5' })
    } catch (err) {
      const refused = err instanceof EndpointRefusedError || (err as NodeJS.ErrnoException).code === 'ECONNREFUSED'
      refuse(socket, reply(refused ? SocksReply.REFUSED : SocksReply.HOST_UNREACHABLE))
      this.#connections.inc({ result: refused ? 'refused' : 'failed' })
      this.#deps.logger.info('socks5: could not connect', { node: nodeName, port, err: (err as Error).message })
      return
    }
    if (socket.destroyed) { upstream.destroy(); return }
    socket.write(reply(SocksReply.OK))
    this.#connections.inc({ result: 'ok' })
    splice(socket, upstream, { copied: this.#deps.copied })
    socket.resume()
  }
}

function isLoopback (ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.')
}
