/**
 * One port per node, as upstream: the data path is also served on the
 * tunnel's port (20006), told apart from libp2p by a connection's first bytes.
 *
 * A libp2p dialer speaks first: 24 random bytes (the pnet nonce) with a PSK,
 * `\x13/multistream/1.0.0` without. A data path client speaks first too: a
 * TLS 1.3 ClientHello from Node, or the relay control hello. The ClientHello's
 * record header and handshake header fix seven of its first eleven bytes, so
 * a random nonce passes for one with probability 2^-56; the relay hello is
 * eight fixed bytes (2^-64). Anything else goes to libp2p unchanged, with the
 * bytes read so far put back.
 */
import type { Server, Socket } from 'node:net'
import type { Logger } from '../observability/logger.ts'
import { RELAY_HELLO } from './wire.ts'
import { peekUntil } from '../net/socket-io.ts'

/** Byte positions and values every ClientHello of ours has: type 22, version 3.1, handshake type 1, length < 64 KiB, legacy version 3.3. */
const CLIENT_HELLO: ReadonlyArray<readonly [number, number]> = [[0, 0x16], [1, 0x03], [2, 0x01], [5, 0x01], [6, 0x00], [9, 0x03], [10, 0x03]]
const CLIENT_HELLO_BYTES = 11

export type FirstBytes = 'datapath' | 'other' | 'undecided'

/** What the first bytes of a connection to the shared port say it is. */
export function classifyFirstBytes (buf: Uint8Array): FirstBytes {
  let tls: boolean | undefined = true
  for (const [at, value] of CLIENT_HELLO) {
    if (at >= buf.length) { tls = undefined; break }
    if (buf[at] !== value) { tls = false; break }
  }
  if (tls === true && buf.length >= CLIENT_HELLO_BYTES) return 'datapath'
  let relay: boolean | undefined = true
  for (let i = 0; i < RELAY_HELLO.length; i++) {
    if (i >= buf.length) { relay = undefined; break }
    if (buf[i] !== RELAY_HELLO[i]) { relay = false; break }
  }
  if (relay === true) return 'datapath'
  return tls === false && relay === false ? 'other' : 'undecided'
}

export interface SharedPortInit {
  /** A connection that has not said what it is within this is closed. @default 5000 */
  timeoutMs?: number
  /** Connections still undecided at once; more are closed. @default 512 */
  maxUndecided?: number
}

/**
 * Takes over a listening server's connections (the libp2p TCP listener's):
 * data path ones go to `dataPath`, the rest to the handlers the server had.
 */
export class SharedPort {
  readonly #log: Logger
  readonly #dataPath: (socket: Socket) => void
  readonly #timeoutMs: number
  readonly #maxUndecided: number
  readonly #undecided = new Set<Socket>()

  constructor (deps: { logger: Logger, dataPath: (socket: Socket) => void }, init: SharedPortInit = {}) {
    this.#log = deps.logger
    this.#dataPath = deps.dataPath
    this.#timeoutMs = init.timeoutMs ?? 5000
    this.#maxUndecided = init.maxUndecided ?? 512
  }

  /** Sockets waiting for their first bytes (tests, status). */
  undecided (): number {
    return this.#undecided.size
  }

  /** Routes `server`'s new connections from now on; returns how to give them back to its own handlers. */
  attach (server: Server): () => void {
    const handlers = server.listeners('connection') as Array<(socket: Socket) => void>
    server.removeAllListeners('connection')
    const demux = (socket: Socket): void => { this.#route(socket, s => { for (const h of handlers) h.call(server, s) }) }
    server.on('connection', demux)
    return () => {
      server.off('connection', demux)
      for (const h of handlers) server.on('connection', h)
      for (const s of this.#undecided) s.destroy()
      this.#undecided.clear()
    }
  }

  #route (socket: Socket, toOthers: (socket: Socket) => void): void {
    if (this.#undecided.size >= this.#maxUndecided) {
      this.#log.debug('shared port: too many undecided connections', { from: socket.remoteAddress })
      socket.destroy()
      return
    }
    this.#undecided.add(socket)
    peekUntil(socket, buf => classifyFirstBytes(buf) !== 'undecided', this.#timeoutMs, 'data path or libp2p opening').then(buf => {
      this.#undecided.delete(socket)
      if (classifyFirstBytes(buf) === 'datapath') this.#dataPath(socket)
      else toOthers(socket)
    }, () => {
      this.#undecided.delete(socket)
      socket.destroy()
    })
  }
}
