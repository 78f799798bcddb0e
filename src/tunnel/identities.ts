/**
 * The secure identity mode (`edgeTunnel.identity: secure`): a random Ed25519
 * key per node, kept in the state directory with mode 0600, instead of
 * upstream's key derived from the node name (which anyone who knows the name
 * can compute).
 *
 * Peers then cannot compute each other's PeerIDs. They learn them through the
 * relays: a node registers its name with every relay it connects to (the
 * relay records the PeerID the Noise handshake authenticated), and asks a
 * relay when it needs another node's PeerID. A relay's own name is checked
 * by asking it (`whois`) over a connection dialed to its configured address.
 * Every name → PeerID learned is pinned in `tunnel-peers.json`: a later,
 * different PeerID for a pinned name is refused and logged, so only the first
 * claim of a name can win (trust on first use). Remove the pin when a node was
 * reinstalled on purpose.
 */
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { TunnelIdentityError } from './errors.ts'

export const WHOIS_PROTOCOL = '/edgemesh/whois/1.0.0'
export const REGISTER_PROTOCOL = '/edgemesh/register/1.0.0'
export const LOOKUP_PROTOCOL = '/edgemesh/lookup/1.0.0'

/** Loads this node's key, or makes one (Ed25519) and saves it with mode 0600. A key readable by others is refused. */
export async function loadOrCreateKey (file: string): Promise<{ key: PrivateKey, created: boolean }> {
  const { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } = await import('@libp2p/crypto/keys')
  let bytes: Buffer | undefined
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new TunnelIdentityError(file, (err as NodeJS.ErrnoException).code ?? String(err), { cause: err })
  }
  if (bytes !== undefined) {
    const mode = (await stat(file)).mode & 0o777
    if ((mode & 0o077) !== 0) throw new TunnelIdentityError(file, `mode ${mode.toString(8)} lets others read the private key; chmod 600 it`)
    try {
      return { key: privateKeyFromProtobuf(bytes), created: false }
    } catch (err) {
      throw new TunnelIdentityError(file, `not a libp2p private key (${(err as Error).message})`, { cause: err })
    }
  }
  const key = await generateKeyPair('Ed25519')
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 })
    const tmp = `${file}.${process.pid}.tmp`
    await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
    await chmod(tmp, 0o600)
    await rename(tmp, file)
  } catch (err) {
    // A key that is not kept would change the node's PeerID at every restart, and its pins elsewhere would refuse it.
    throw new TunnelIdentityError(file, `cannot save a new key (${(err as NodeJS.ErrnoException).code ?? String(err)}); make the state directory (commonConfig.stateDir) writable`, { cause: err })
  }
  return { key, created: true }
}

/**
 * Name → PeerID pins, persisted as JSON. A pin that cannot be saved (a
 * read-only state directory) still holds until restart; `onSaveFailed` is told.
 */
export class PeerPins {
  readonly #file: string
  readonly #onSaveFailed: (err: Error) => void
  #pins = new Map<string, string>()
  #writing: Promise<void> = Promise.resolve()

  constructor (file: string, onSaveFailed: (err: Error) => void = () => {}) {
    this.#file = file
    this.#onSaveFailed = onSaveFailed
  }

  async load (): Promise<void> {
    try {
      const parsed = JSON.parse(await readFile(this.#file, 'utf8')) as Record<string, unknown>
      this.#pins = new Map(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new TunnelIdentityError(this.#file, `unreadable pins (${(err as Error).message}); fix or remove the file`, { cause: err })
    }
  }

  get (nodeName: string): string | undefined {
    return this.#pins.get(nodeName)
  }

  /** `new` (pinned now), `same` (already so), or `conflict` (pinned to another PeerID: refuse). */
  async pin (nodeName: string, peerId: string): Promise<'new' | 'same' | 'conflict'> {
    const known = this.#pins.get(nodeName)
    if (known === peerId) return 'same'
    if (known !== undefined) return 'conflict'
    this.#pins.set(nodeName, peerId)
    // One write at a time, each of the whole table: concurrent pins must not race on the file.
    const write = this.#writing.then(async () => {
      await mkdir(dirname(this.#file), { recursive: true, mode: 0o700 })
      const tmp = `${this.#file}.${process.pid}.tmp`
      await writeFile(tmp, JSON.stringify(Object.fromEntries(this.#pins), null, 2) + '\n', { mode: 0o600 })
      await rename(tmp, this.#file)
    })
    this.#writing = write.catch((err: Error) => { this.#onSaveFailed(err) })
    await this.#writing
    return 'new'
  }
}

/** Reads one newline-terminated line from a libp2p stream (at most 4 KiB). */
export async function readStreamLine (stream: Stream, signal: AbortSignal): Promise<string> {
  return await new Promise((resolve, reject) => {
    let buf = ''
    const finish = (): void => {
      stream.removeEventListener('message', onMessage as never)
      stream.removeEventListener('close', finish)
      signal.removeEventListener('abort', finish)
      const at = buf.indexOf('\n')
      if (at >= 0) resolve(buf.slice(0, at))
      else reject(new Error(signal.aborted ? 'timed out' : buf.length > 4096 ? 'line too long' : 'closed without an answer'))
    }
    const onMessage = (e: { data: Uint8Array | { subarray: () => Uint8Array } }): void => {
      buf += Buffer.from(e.data instanceof Uint8Array ? e.data : e.data.subarray()).toString()
      if (buf.includes('\n') || buf.length > 4096) finish()
    }
    stream.addEventListener('message', onMessage as never)
    stream.addEventListener('close', finish)
    signal.addEventListener('abort', finish, { once: true })
  })
}

export function sendLine (stream: Stream, value: unknown): void {
  stream.send(Buffer.from(JSON.stringify(value) + '\n'))
}
