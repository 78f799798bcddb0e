/**
 * Node names ↔ PeerIDs, in one of two identity modes chosen once at start:
 * - `compat` (upstream): keys derived from node names, so any PeerID follows
 *   from a name; compatible with Go EdgeMesh.
 * - `secure`: random keys, names learned through the relays and pinned
 *   (see identities.ts).
 */
import type { Libp2p, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import type { Logger } from '../observability/logger.ts'
import { compatRawKey } from './identity.ts'
import { LOOKUP_PROTOCOL, PeerPins, REGISTER_PROTOCOL, WHOIS_PROTOCOL, loadOrCreateKey, readStreamLine, sendLine } from './identities.ts'
import { TunnelDialError } from './errors.ts'

/** What a directory needs from the running host. */
export interface DirectoryHost {
  /** One request line, one answer line, on a new stream to `peerId`. */
  ask (peerId: PeerId, protocol: string, request: unknown, signal: AbortSignal): Promise<string>
  /** The relays in use (secure: those resolved and registered with). */
  relays (): ReadonlyArray<{ nodeName: string, peerId: PeerId }>
  /** PeerIDs with an open connection. */
  connected (): Set<string>
}

export interface PeerDirectory {
  readonly mode: 'compat' | 'secure'
  /** Reads persisted state (pins); before anything else. */
  load (): Promise<void>
  privateKey (): Promise<PrivateKey>
  /** A relay's PeerID from its configured name alone, when the mode allows it (compat). */
  configuredRelayId (nodeName: string): Promise<PeerId | undefined>
  /** Checks a relay reached at its configured address and registers this node there (secure); false when it is not that relay. */
  admitRelay (peerId: PeerId, nodeName: string): Promise<boolean>
  /** Re-registers this node's name with a relay (a restarted relay forgets names); no-op in compat mode. */
  register (relay: { nodeName: string, peerId: PeerId }): Promise<void>
  /** A node's PeerID (derived, pinned or asked of the relays); the name is remembered for the peer table. */
  peerIdOf (nodeName: string, signal?: AbortSignal): Promise<PeerId>
  /** A name a peer gave for itself; kept only when it is that peer's. */
  learnName (peerId: PeerId, nodeName: string | undefined): Promise<void>
  remember (peerId: string, nodeName: string): void
  nameOf (peerId: string): string | undefined
  /** Registers this mode's protocol handlers. */
  handle (node: Libp2p, isRelay: boolean): Promise<void>
}

/** PeerIDs by node name, computed once (upstream's derivation). */
const derived = new Map<string, Promise<PeerId>>()
export async function compatPeerId (nodeName: string): Promise<PeerId> {
  let p = derived.get(nodeName)
  if (p === undefined) {
    p = (async () => {
      const { privateKeyFromRaw } = await import('@libp2p/crypto/keys')
      const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
      return peerIdFromPrivateKey(privateKeyFromRaw(compatRawKey(nodeName)))
    })()
    derived.set(nodeName, p)
  }
  return await p
}

abstract class NameBook {
  protected readonly names = new Map<string, string>()
  protected readonly nodeName: string
  protected readonly host: DirectoryHost
  protected readonly log: Logger

  constructor (deps: { logger: Logger, host: DirectoryHost }, nodeName: string) {
    this.log = deps.logger
    this.host = deps.host
    this.nodeName = nodeName
  }

  remember (peerId: string, nodeName: string): void {
    this.names.set(peerId, nodeName)
  }

  nameOf (peerId: string): string | undefined {
    return this.names.get(peerId)
  }

  async handle (node: Libp2p, _isRelay: boolean): Promise<void> {
    const nodeName = this.nodeName
    await node.handle(WHOIS_PROTOCOL, (stream) => {
      sendLine(stream, { nodeName })
      closeQuietly(stream, this.log)
    }, { runOnLimitedConnection: true })
  }
}

export class CompatDirectory extends NameBook implements PeerDirectory {
  readonly mode = 'compat'

  async load (): Promise<void> {}

  async privateKey (): Promise<PrivateKey> {
    const { privateKeyFromRaw } = await import('@libp2p/crypto/keys')
    return privateKeyFromRaw(compatRawKey(this.nodeName))
  }

  async configuredRelayId (nodeName: string): Promise<PeerId> {
    return await this.peerIdOf(nodeName)
  }

  async admitRelay (): Promise<boolean> { return true }
  async register (): Promise<void> {}

  async peerIdOf (nodeName: string): Promise<PeerId> {
    const id = await compatPeerId(nodeName)
    this.remember(id.toString(), nodeName)
    return id
  }

  async learnName (peerId: PeerId, nodeName: string | undefined): Promise<void> {
    if (nodeName === undefined || nodeName === '') return
    if ((await compatPeerId(nodeName)).toString() !== peerId.toString()) {
      this.log.warn('a peer gave a node name that is not its own: ignored', { peer: peerId.toString(), nodeName })
      return
    }
    this.remember(peerId.toString(), nodeName)
  }
}

export class SecureDirectory extends NameBook implements PeerDirectory {
  readonly mode = 'secure'
  readonly #keyFile: string
  readonly #pinsFile: string
  readonly #pins: PeerPins
  /** Relay side: the names nodes registered, by PeerID. */
  readonly #registered = new Map<string, string>()

  constructor (deps: { logger: Logger, host: DirectoryHost }, init: { nodeName: string, keyFile: string, pinsFile: string }) {
    super(deps, init.nodeName)
    this.#keyFile = init.keyFile
    this.#pinsFile = init.pinsFile
    let warned = false
    this.#pins = new PeerPins(init.pinsFile, err => {
      if (warned) return
      warned = true
      this.log.warn('peer pins cannot be saved: they hold until restart only', { file: init.pinsFile, err: err.message, hint: 'make the state directory (commonConfig.stateDir) writable' })
    })
  }

  async load (): Promise<void> {
    await this.#pins.load()
  }

  async privateKey (): Promise<PrivateKey> {
    const own = await loadOrCreateKey(this.#keyFile)
    if (own.created) this.log.info('tunnel identity created', { file: this.#keyFile })
    return own.key
  }

  async configuredRelayId (): Promise<undefined> { return undefined }

  async admitRelay (peerId: PeerId, nodeName: string): Promise<boolean> {
    const who = JSON.parse(await this.host.ask(peerId, WHOIS_PROTOCOL, undefined, AbortSignal.timeout(5000))) as { nodeName?: unknown }
    if (who.nodeName !== nodeName) {
      this.log.warn('the relay at this address is another node: not used', { relay: nodeName, says: who.nodeName })
      return false
    }
    if (!await this.#pin(nodeName, peerId.toString())) return false
    this.remember(peerId.toString(), nodeName)
    return true
  }

  async register (relay: { nodeName: string, peerId: PeerId }): Promise<void> {
    const answer = await this.host.ask(relay.peerId, REGISTER_PROTOCOL, { nodeName: this.nodeName }, AbortSignal.timeout(5000))
      .catch((err: Error) => JSON.stringify({ error: err.message }))
    const parsed = JSON.parse(answer) as { error?: string }
    if (parsed.error !== undefined) this.log.warn('relay refused this node\'s name', { relay: relay.nodeName, err: parsed.error })
  }

  async peerIdOf (nodeName: string, signal?: AbortSignal): Promise<PeerId> {
    const { peerIdFromString } = await import('@libp2p/peer-id')
    const pinned = this.#pins.get(nodeName)
    let found: string | undefined = pinned
    for (const r of pinned === undefined ? this.host.relays() : []) {
      const answer = await this.host.ask(r.peerId, LOOKUP_PROTOCOL, { nodeName }, signal ?? AbortSignal.timeout(5000))
        .catch((err: Error) => { this.log.debug('relay lookup failed', { relay: r.nodeName, node: nodeName, err: err.message }); return '{}' })
      const peerId = (JSON.parse(answer) as { peerId?: unknown }).peerId
      if (typeof peerId !== 'string') continue
      if (!await this.#pin(nodeName, peerId)) throw new TunnelDialError(nodeName, 'its PeerID differs from the pinned one (see the log)')
      found = peerId
      break
    }
    if (found === undefined) throw new TunnelDialError(nodeName, 'no relay knows this node yet (secure identity mode: it registers with the relays when it connects)')
    this.remember(found, nodeName)
    return peerIdFromString(found)
  }

  async learnName (peerId: PeerId, nodeName: string | undefined): Promise<void> {
    if (nodeName !== undefined && nodeName !== '') this.remember(peerId.toString(), nodeName)
  }

  override async handle (node: Libp2p, isRelay: boolean): Promise<void> {
    await super.handle(node, isRelay)
    if (!isRelay) return
    // Names → PeerIDs: the PeerID is the one the connection's handshake proved.
    await node.handle(REGISTER_PROTOCOL, (stream, connection) => {
      this.#serveRegister(stream, connection.remotePeer.toString()).catch((err: Error) => {
        this.log.debug('bad register request', { err: err.message })
        stream.abort(new Error('bad register'))
      })
    }, { runOnLimitedConnection: true })
    await node.handle(LOOKUP_PROTOCOL, (stream) => {
      readStreamLine(stream, AbortSignal.timeout(5000)).then(line => {
        const name = (JSON.parse(line) as { nodeName?: unknown }).nodeName
        const peerId = [...this.#registered].find(([, n]) => n === name)?.[0]
        sendLine(stream, peerId !== undefined ? { peerId } : {})
        closeQuietly(stream, this.log)
      }).catch((err: Error) => {
        this.log.debug('bad lookup request', { err: err.message })
        stream.abort(new Error('bad lookup'))
      })
    }, { runOnLimitedConnection: true })
  }

  /** Relay side of the registry: the name a connected, handshake-proven PeerID claims. */
  async #serveRegister (stream: Stream, peerId: string): Promise<void> {
    const name = (JSON.parse(await readStreamLine(stream, AbortSignal.timeout(5000))) as { nodeName?: unknown }).nodeName
    if (typeof name !== 'string' || name === '') throw new Error('no name')
    const connected = this.host.connected()
    const holder = [...this.#registered].find(([id, n]) => n === name && id !== peerId)
    let error: string | undefined
    if (holder !== undefined && connected.has(holder[0])) error = `${name} is registered by another connected peer`
    else if (!await this.#pin(name, peerId)) error = `${name} is pinned to another PeerID on this relay`
    if (error === undefined) {
      if (holder !== undefined) this.#registered.delete(holder[0])
      this.#registered.set(peerId, name)
      this.remember(peerId, name)
      // Bounded: forget peers that are gone once the table grows.
      if (this.#registered.size > 10_000) for (const id of this.#registered.keys()) if (!connected.has(id)) this.#registered.delete(id)
    } else {
      this.log.warn('node name registration refused', { node: name, peerId, err: error })
    }
    sendLine(stream, error === undefined ? { ok: true } : { error })
    closeQuietly(stream, this.log)
  }

  /** Pins name → PeerID; false, with a log line, when the name is pinned to another PeerID. */
  async #pin (nodeName: string, peerId: string): Promise<boolean> {
    const result = await this.#pins.pin(nodeName, peerId)
    if (result === 'conflict') {
      this.log.warn('PeerID of a pinned node changed: refused (remove its pin if the node was reinstalled)', { node: nodeName, pinned: this.#pins.get(nodeName), offered: peerId, file: this.#pinsFile })
      return false
    }
    if (result === 'new') this.log.info('peer pinned', { node: nodeName, peerId })
    return true
  }
}

/** Closes a stream whose answer was sent; a peer that already left is routine. */
export function closeQuietly (stream: Stream, log: Logger): void {
  stream.close().catch((err: Error) => log.debug('stream close failed', { err: err.message }))
}
