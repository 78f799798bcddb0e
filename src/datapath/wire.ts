/**
 * The data path's small wire pieces: key derivation, cipher preference and
 * newline-terminated JSON control lines. Pure functions, no sockets.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'

/** First byte of a relay control connection (a TLS client starts with 0x16). */
export const RELAY_MAGIC = 0x52 // 'R'
/** How long a control line (relay nonce, request, answer) or a TLS handshake may take. */
export const CONTROL_TIMEOUT_MS = 5000
/**
 * What a relay client sends first: RELAY_MAGIC and seven more fixed bytes, so
 * that on a port shared with libp2p it cannot pass for a pnet nonce (2^-64).
 * A relay strips the seven from the request line it reads after its nonce.
 */
export const RELAY_HELLO = Buffer.from('REMRELAY')
export { MAX_LINE_BYTES, takeLine } from '../net/socket-io.ts'

/**
 * TLS 1.3 external PSK for one direction of one node pair. The identity is
 * `client>server`, so a server refuses identities not naming it, and a node
 * reached by mistake (another host on the same private address) fails the
 * handshake instead of serving the connection.
 */
export function pairIdentity (client: string, server: string): string {
  return `${client}>${server}`
}

export function parseIdentity (identity: string): { client: string, server: string } | undefined {
  const at = identity.indexOf('>')
  if (at <= 0 || at === identity.length - 1) return undefined
  return { client: identity.slice(0, at), server: identity.slice(at + 1) }
}

/** The TLS PSK for an identity: HKDF-SHA256 of the tunnel's 32-byte pnet key. */
export function tlsKey (pnetKey: Uint8Array, identity: string): Buffer {
  return Buffer.from(hkdfSync('sha256', pnetKey, 'edgemesh-datapath/1', identity, 32))
}

/** The key relay control requests are MACed with: HKDF-SHA256 of the tunnel's 32-byte pnet key. */
export function relayControlKey (pnetKey: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', pnetKey, 'edgemesh-relay/1', 'control', 32))
}

/** MAC of a relay control request, bound to the relay's challenge so it cannot be replayed. */
export function relayMac (controlKey: Uint8Array, nonce: Uint8Array, request: { op: string, node: string, target?: string }): string {
  return createHmac('sha256', controlKey).update(nonce).update(`${request.op}\n${request.node}\n${request.target ?? ''}`).digest('hex')
}

/** Identities whose TLS key is kept: more than any cluster has nodes talking to one node at once. */
const CACHED_TLS_KEYS = 4096

/**
 * The keys derived from one pnet key, each derived once: an HKDF per
 * connection (a KeyObject each) cost as much CPU as a tenth of the handshake
 * in bench/tunnel. The TLS keys are kept per identity up to a bound, since a
 * server derives one for whatever identity a client names before it proves
 * anything.
 */
export class DataPathKeys {
  readonly #pnetKey: Uint8Array
  readonly #tls = new Map<string, Buffer>()
  #relayControl: Buffer | undefined
  #resume: Buffer | undefined

  constructor (pnetKey: Uint8Array) {
    this.#pnetKey = pnetKey
  }

  tls (identity: string): Buffer {
    let key = this.#tls.get(identity)
    if (key === undefined) {
      if (this.#tls.size >= CACHED_TLS_KEYS) this.#tls.clear()
      key = tlsKey(this.#pnetKey, identity)
      this.#tls.set(identity, key)
    }
    return key
  }

  relayMac (nonce: Uint8Array, request: { op: string, node: string, target?: string }): string {
    this.#relayControl ??= relayControlKey(this.#pnetKey)
    return relayMac(this.#relayControl, nonce, request)
  }

  /** The key resume requests and answers are MACed with (resume-wire.ts). */
  resume (): Buffer {
    this.#resume ??= Buffer.from(hkdfSync('sha256', this.#pnetKey, 'edgemesh-resume/1', 'sessions', 32))
    return this.#resume
  }
}

export function macMatches (a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex')
  const y = Buffer.from(b, 'hex')
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y)
}

/**
 * The handshake's key exchange: X25519 alone. OpenSSL 3.5 also offers the
 * hybrid X25519MLKEM768 by default, which doubled the CPU of a data path
 * handshake here; the external PSK is mixed into every key, so an attacker who
 * could break X25519 would still need the PSK, and forward secrecy stays.
 */
export const KEY_EXCHANGE_GROUP = 'X25519'

/**
 * TLS 1.3 suites in preference order: AES-GCM where the CPU has AES
 * instructions, ChaCha20-Poly1305 otherwise (much faster without them,
 * e.g. on a Raspberry Pi 4, whose Cortex-A72 lacks the crypto extension).
 */
export function cipherPreference (cpuinfo = readCpuinfo()): string {
  const aes = /^(flags|Features)\s*:.*\baes\b/m.test(cpuinfo)
  return aes ? 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256' : 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256'
}

function readCpuinfo (): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8')
  } catch {
    return ''
  }
}

export function jsonLine (value: unknown): string {
  return `${JSON.stringify(value)}\n`
}

/**
 * What a node asks a relay: to park a connection for itself, to be joined to
 * one `target` parked, or where its connection came from (`seen ip:port`,
 * the TCP mapping TCP punching needs).
 */
export interface RelayRequest { op: 'park' | 'join' | 'reflect', node: string, target?: string, mac: string }

/** A relay control line, or undefined when it is not one (not JSON, wrong fields); never throws. */
export function parseRelayRequest (line: string): RelayRequest | undefined {
  const v = parseObject(line)
  if (v === undefined) return undefined
  const { op, node, target, mac } = v
  if ((op !== 'park' && op !== 'join' && op !== 'reflect') || typeof node !== 'string' || typeof mac !== 'string') return undefined
  if (target === undefined) return { op, node, mac }
  return typeof target === 'string' ? { op, node, target, mac } : undefined
}

/** The endpoint a TLS client asks this node to connect to, or undefined when the line is not such a request; never throws. */
export function parseTargetRequest (line: string): { ip: string, port: number, frames: boolean } | undefined {
  const v = parseObject(line)
  return v !== undefined && typeof v.ip === 'string' && typeof v.port === 'number' ? { ip: v.ip, port: v.port, frames: v.frames === 1 } : undefined
}

/** A channel's name: lowercase letters, digits and dashes, as `cni-v2`. */
const CHANNEL_NAME = /^[a-z0-9-]{1,32}$/

/**
 * `{"channel":"cni-v2"}`: the connection carries a module's own traffic between
 * the two agents (the edge CNI's packets) instead of a proxied connection.
 */
export function parseChannelRequest (line: string): { channel: string } | undefined {
  const v = parseObject(line)
  return v !== undefined && typeof v.channel === 'string' && CHANNEL_NAME.test(v.channel) ? { channel: v.channel } : undefined
}

function parseObject (line: string): Record<string, unknown> | undefined {
  let v: unknown
  try {
    v = JSON.parse(line)
  } catch {
    return undefined
  }
  return typeof v === 'object' && v !== null ? v as Record<string, unknown> : undefined
}
