/**
 * libp2p private networks (pnet v1) with a native XSalsa20.
 *
 * Same wire as `@libp2p/pnet` and go-libp2p: each side sends a random
 * 24-byte nonce first, then every byte of the connection is XORed with
 * XSalsa20(key, nonce) of the sending side. `@libp2p/pnet` runs the whole
 * queued write through the `xsalsa20` WebAssembly at once: about half the
 * tunnel's throughput, and a multi-megabyte write corrupts the stream (seen
 * as truncated transfers). Here the cipher is libsodium's (`sodium-native`,
 * prebuilt for linux x64/arm64/arm), fed 64 KiB at a time; where the addon
 * cannot load, the same `xsalsa20` package is used, chunked the same way.
 */
import { randomBytes } from 'node:crypto'
import type { AbortOptions, ConnectionProtector, MessageStream, MultiaddrConnection } from '@libp2p/interface'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import { loadSodium } from './sodium.ts'

const NONCE_LENGTH = 24
/** Bytes run through the cipher per call: bounds the temporary buffers whatever the layers above queue. */
const CHUNK_BYTES = 64 * 1024
/** How long the nonce exchange may take when the caller gives no signal (as `@libp2p/pnet`). */
const NONCE_TIMEOUT_MS = 5000
/**
 * Buffers the libp2p stack allocates per byte on the wire, each way: the
 * socket's read (or our batched write) and Noise's. Reported to the
 * reclaimer: counting only what proxied streams deliver left the agent
 * (run with --optimize-for-size) in a full collection every 60-80 ms at
 * 40 MB/s through the tunnel, a relay in more.
 */
const STACK_COPIES = 2

/** A keystream cipher: XORs the next bytes of the stream with `data` into `out` (a new buffer if not given; may be `data` itself). */
export interface XorCipher {
  update: (data: Uint8Array, out?: Uint8Array) => Uint8Array
}

/** Makes the cipher for one direction of one connection. */
export type CipherFactory = (nonce: Uint8Array, key: Uint8Array) => XorCipher

/**
 * libsodium's XSalsa20 (`crypto_stream_xor`, 64-bit block counter) through
 * sodium-native's stateful binding; undefined when the addon does not load.
 * (The binding's functions, not the `*_wrap_*` JavaScript wrappers: in
 * sodium-native 5.1.0 those check the state against a constant that is not
 * exported and always throw.)
 */
export async function loadSodiumCipher (): Promise<CipherFactory | undefined> {
  const sodium = await loadSodium()
  if (sodium === undefined) return undefined
  const stateBytes = sodium.crypto_stream_xor_STATEBYTES
  if (typeof stateBytes !== 'number' || typeof sodium.crypto_stream_xor_update !== 'function') return undefined
  return (nonce, key) => {
    const state = Buffer.alloc(stateBytes)
    sodium.crypto_stream_xor_init(state, nonce, key)
    return {
      update (data, out = Buffer.allocUnsafe(data.byteLength)) {
        sodium.crypto_stream_xor_update(state, out, data)
        return out
      }
    }
  }
}

/** The `xsalsa20` package (WebAssembly, with a JavaScript fallback of its own): what `@libp2p/pnet` uses. */
export async function loadWasmCipher (): Promise<CipherFactory> {
  const mod = await import('xsalsa20') as { default: (nonce: Uint8Array, key: Uint8Array) => XorCipher }
  return (nonce, key) => mod.default(nonce, key)
}

/** Which XSalsa20 protects connections: `native` (libsodium) or `wasm` (the `xsalsa20` package). */
export type PnetImplementation = 'native' | 'wasm'

/**
 * The connection protector for a derived 32-byte pnet key, native where
 * possible. Every byte of every libp2p connection passes it, so it tells
 * `copied` about them.
 */
export async function createProtector (key: Uint8Array, prefer: PnetImplementation = 'native', copied?: CopiedStreams): Promise<{ protector: () => ConnectionProtector, implementation: PnetImplementation }> {
  const native = prefer === 'native' ? await loadSodiumCipher() : undefined
  const cipher = native ?? await loadWasmCipher()
  const { AbstractMultiaddrConnection, byteStream } = await import('@libp2p/utils')
  return { protector: () => new ChunkedProtector(key, cipher, AbstractMultiaddrConnection, byteStream, copied), implementation: native !== undefined ? 'native' : 'wasm' }
}

type Utils = typeof import('@libp2p/utils')

class ChunkedProtector implements ConnectionProtector {
  readonly #key: Uint8Array
  readonly #cipher: CipherFactory
  readonly #Base: Utils['AbstractMultiaddrConnection']
  readonly #byteStream: Utils['byteStream']
  readonly #copied: CopiedStreams | undefined

  constructor (key: Uint8Array, cipher: CipherFactory, Base: Utils['AbstractMultiaddrConnection'], byteStream: Utils['byteStream'], copied: CopiedStreams | undefined) {
    this.#key = key
    this.#cipher = cipher
    this.#Base = Base
    this.#byteStream = byteStream
    this.#copied = copied
  }

  readonly [Symbol.toStringTag] = '@edgemesh/pnet'

  async protect (connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const signal = options?.signal ?? AbortSignal.timeout(NONCE_TIMEOUT_MS)
    const localNonce = randomBytes(NONCE_LENGTH)
    const bytes = this.#byteStream(connection)
    const [remote] = await Promise.all([
      bytes.read({ bytes: NONCE_LENGTH, signal }),
      bytes.write(localNonce, { signal })
    ])
    const maConn = bytes.unwrap() as MultiaddrConnection
    return boxedConnection(this.#Base, maConn, this.#cipher(remote.subarray(), this.#key), this.#cipher(localNonce, this.#key), this.#copied)
  }
}

/** The protected connection: the same events as the raw one, with every byte run through the ciphers. */
function boxedConnection (Base: Utils['AbstractMultiaddrConnection'], maConn: MultiaddrConnection, inbound: XorCipher, outbound: XorCipher, copied: CopiedStreams | undefined): MultiaddrConnection {
  class Boxed extends Base {
    // Everything written in one tick leaves in one socket write: Noise and
    // Yamux hand over a 2-byte length, a 12-byte header and the payload as
    // separate pieces, and @libp2p/tcp writes each with its own syscall
    // (measured: seven small writes per 64 KiB of payload). The pieces wait
    // as they are and are enciphered straight into that write's buffer.
    #pending: Uint8Array[] = []
    #pendingBytes = 0
    #flushScheduled = false
    #blocked = false

    constructor () {
      super({ log: maConn.log.newScope('pnet'), remoteAddr: maConn.remoteAddr, direction: maConn.direction })
      maConn.addEventListener('message', (evt) => {
        const data = evt.data
        copied?.add(data.byteLength * STACK_COPIES)
        for (const buf of data instanceof Uint8Array ? [data] : data) {
          // In place: the socket's read buffer is ours alone.
          for (let at = 0; at < buf.byteLength; at += CHUNK_BYTES) {
            const piece = buf.subarray(at, at + CHUNK_BYTES)
            this.onData(inbound.update(piece, piece))
          }
        }
      })
      maConn.addEventListener('drain', () => {
        this.#blocked = false
        this.onMuxerDrain()
      })
      maConn.addEventListener('close', (evt) => {
        if (evt.error == null) this.onTransportClosed()
        else if (evt.local) this.abort(evt.error)
        else this.onRemoteReset()
      })
    }

    #flush (): void {
      this.#flushScheduled = false
      if (this.#pending.length === 0) return
      const out = Buffer.allocUnsafe(this.#pendingBytes)
      let at = 0
      for (const piece of this.#pending) {
        outbound.update(piece, out.subarray(at, at + piece.byteLength))
        at += piece.byteLength
      }
      this.#pending = []
      this.#pendingBytes = 0
      // Flushed from a microtask too: the connection may have closed meanwhile.
      if (maConn.status !== 'open') return
      try {
        if (!maConn.send(out)) this.#blocked = true
      } catch (err) {
        this.abort(err as Error)
      }
    }

    async sendClose (options?: AbortOptions): Promise<void> {
      this.#flush()
      await maConn.close(options)
    }

    sendData (data: Iterable<Uint8Array> & { byteLength: number }): { sentBytes: number, canSendMore: boolean } {
      copied?.add(data.byteLength * STACK_COPIES)
      // Chunk by chunk, never one big temporary: the list can hold megabytes the layers above queued.
      for (const buf of data) {
        for (let at = 0; at < buf.byteLength; at += CHUNK_BYTES) {
          const piece = buf.subarray(at, at + CHUNK_BYTES)
          this.#pending.push(piece)
          this.#pendingBytes += piece.byteLength
          if (this.#pendingBytes >= CHUNK_BYTES) this.#flush()
        }
      }
      if (!this.#flushScheduled && this.#pending.length > 0) {
        this.#flushScheduled = true
        queueMicrotask(() => { this.#flush() })
      }
      return { sentBytes: data.byteLength, canSendMore: !this.#blocked }
    }

    sendReset (err: Error): void {
      this.#pending = []
      this.#pendingBytes = 0
      maConn.abort(err)
    }

    sendPause (): void {
      maConn.pause()
    }

    sendResume (): void {
      maConn.resume()
    }
  }
  return new Boxed() as unknown as MultiaddrConnection
}
