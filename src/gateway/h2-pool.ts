/**
 * Cleartext HTTP/2 (prior knowledge) to backends that speak it, gRPC above
 * all: one session per endpoint, its streams multiplexed, connections from
 * the mesh dialer. node:http2 rather than undici's HTTP/2 client: undici
 * 7.30 drops response trailers (it parses Node's trailer object as a flat
 * list), and gRPC's status travels in them.
 */
import http2 from 'node:http2'
import type { Duplex, Readable } from 'node:stream'

/** What a backend answered: the shape of undici's ResponseData that the handler reads. */
export interface UpstreamResponse {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  body: Readable
  /** Filled when the body has ended. */
  trailers: Record<string, string | string[] | undefined>
}

export interface H2Request {
  method: string
  path: string
  headers: Record<string, string | string[]>
  body: Readable | null
  signal: AbortSignal | undefined
}

/** Sessions unused this long are closed. */
const IDLE_MS = 30_000

export class H2Pool {
  readonly #dial: (key: string) => Promise<Duplex>
  readonly #sessions = new Map<string, Promise<http2.ClientHttp2Session>>()

  /** `dial` opens a connection to `ip:port` (the key). */
  constructor (dial: (key: string) => Promise<Duplex>) {
    this.#dial = dial
  }

  async request (key: string, req: H2Request): Promise<UpstreamResponse> {
    const session = await this.#session(key)
    req.signal?.throwIfAborted()
    const headers: http2.OutgoingHttpHeaders = { ...req.headers, ':method': req.method, ':path': req.path }
    // HTTP/2 carries the authority as a pseudo-header; Host would be a second, conflicting one.
    headers[':authority'] = req.headers.host ?? key
    delete headers.host
    const stream = session.request(headers, { endStream: req.body === null, signal: req.signal })
    if (req.body !== null) req.body.pipe(stream)
    return await new Promise((resolve, reject) => {
      const trailers: UpstreamResponse['trailers'] = {}
      stream.once('trailers', (t: http2.IncomingHttpHeaders) => { Object.assign(trailers, t) })
      stream.once('response', (h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
        stream.off('error', reject)
        const out: UpstreamResponse['headers'] = {}
        for (const [k, v] of Object.entries(h)) if (!k.startsWith(':')) out[k] = v
        resolve({ statusCode: Number(h[':status'] ?? 502), headers: out, body: stream, trailers })
      })
      stream.once('error', reject)
    })
  }

  close (): void {
    for (const s of this.#sessions.values()) s.then(x => x.destroy(), () => {})
    this.#sessions.clear()
  }

  async #session (key: string): Promise<http2.ClientHttp2Session> {
    let pending = this.#sessions.get(key)
    if (pending === undefined) {
      pending = this.#dial(key).then(socket => {
        // The URL is only a default authority: every request names its own, and the socket is already there.
        const session = http2.connect('http://backend', { createConnection: () => socket })
        const forget = (): void => { if (this.#sessions.get(key) === pending) this.#sessions.delete(key) }
        session.on('error', forget)
        session.once('close', forget)
        session.once('goaway', forget)
        session.setTimeout(IDLE_MS, () => session.close())
        return session
      })
      // A failed dial is not remembered: the next request dials again.
      pending.catch(() => { if (this.#sessions.get(key) === pending) this.#sessions.delete(key) })
      this.#sessions.set(key, pending)
    }
    const session = await pending
    if (session.closed || session.destroyed) {
      this.#sessions.delete(key)
      return await this.#session(key)
    }
    return session
  }
}
