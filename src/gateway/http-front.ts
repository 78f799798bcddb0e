/**
 * One listening socket for HTTP/1.1 and HTTP/2 on a gateway port. With TLS,
 * ALPN picks the protocol (`h2`, else `http/1.1`); without, a connection
 * that opens with the HTTP/2 preface is h2c (prior knowledge, as gRPC
 * clients do) and anything else HTTP/1.1. Each connection is then handed to
 * the HTTP/1.1 fast path, an http.Server or an http2 server that never listen
 * themselves, so both protocols share one port, one request handler and the
 * port's caps.
 */
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'
import type { Duplex } from 'node:stream'

/** The client connection preface of HTTP/2 (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

export interface HttpFrontOptions {
  /** TLS to terminate; absent for plain HTTP and h2c. */
  tls?: tls.TlsOptions
  http: http.ServerOptions
  /** Idle HTTP/2 sessions close after this. */
  idleTimeoutMs: number
  /** A plain connection must send its first bytes (they tell HTTP/1.1 from h2c), and an HTTP/2 client its preface and SETTINGS, within this. */
  firstBytesTimeoutMs: number
  /** Concurrent streams per HTTP/2 connection. */
  maxStreams: number
  onRequest: (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void
  onUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void
  onClientError: (err: NodeJS.ErrnoException, socket: Duplex) => void
  /** Takes HTTP/1.1 connections first (`http1-fast.ts`) and hands them to the http.Server when it will not serve a request. */
  fast?: { serve: (socket: Duplex, handOff: (socket: Duplex) => void) => void, closeIdle: () => void }
}

export interface HttpFront {
  /** What listens: a net.Server, or a tls.Server when TLS is terminated. */
  server: net.Server
  /** Closes keep-alive connections without a request in flight, and asks HTTP/2 clients to go away. */
  closeIdle: () => void
}

export function createHttpFront (o: HttpFrontOptions): HttpFront {
  // `Upgrade: h2c` (curl --http2 on http://) is declined, as RFC 9113 lets a server do: the request
  // is answered over HTTP/1.1 and routed like any other. Taken as an upgrade, the connection would
  // be spliced to the first request's backend, and a redirect route could not answer it.
  const h1 = http.createServer({ ...o.http, shouldUpgradeCallback: req => upgradesTo(req).some(p => p !== 'h2c') })
  h1.on('request', o.onRequest)
  h1.on('upgrade', o.onUpgrade)
  h1.on('clientError', o.onClientError)
  // Node checks header deadlines only for a server that emitted 'listening'; this one never listens itself.
  h1.emit('listening')
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: o.maxStreams }, maxSessionMemory: 16 })
  h2.on('request', o.onRequest)
  h2.setTimeout(o.idleTimeoutMs)
  const sessions = new Set<http2.ServerHttp2Session>()
  h2.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s)
    // A client that stalls inside the preface sends no SETTINGS: it gets the first-bytes deadline, not the idle one.
    const stalled = setTimeout(() => s.destroy(), o.firstBytesTimeoutMs)
    s.once('remoteSettings', () => clearTimeout(stalled))
    s.once('close', () => { clearTimeout(stalled); sessions.delete(s) })
    s.on('error', () => {})
  })

  const toH1 = (socket: Duplex): void => { h1.emit('connection', socket) }
  const fast = o.fast
  const http1 = fast === undefined ? toH1 : (socket: Duplex) => { fast.serve(socket, toH1) }
  let server: net.Server
  if (o.tls !== undefined) {
    server = tls.createServer({ ...o.tls, ALPNProtocols: ['h2', 'http/1.1'] }, socket => {
      if (socket.alpnProtocol === 'h2') h2.emit('connection', socket)
      else http1(socket)
    })
    server.on('tlsClientError', (_err, socket) => { socket.destroy() })
  } else {
    server = net.createServer(socket => { sniff(socket, http1, h2, o.firstBytesTimeoutMs) })
  }
  server.once('close', () => { h1.close() })
  return {
    server,
    closeIdle: () => {
      fast?.closeIdle()
      h1.closeIdleConnections()
      for (const s of sessions) s.close()
    }
  }
}

/** Reads the first bytes of a plain connection: the HTTP/2 preface (or a prefix of it, as far as sent) means h2c. */
function sniff (socket: net.Socket, http1: (socket: Duplex) => void, h2: http2.Http2Server, timeoutMs: number): void {
  socket.setTimeout(timeoutMs, () => socket.destroy())
  socket.once('data', (chunk: Buffer) => {
    socket.pause()
    socket.setTimeout(0)
    socket.unshift(chunk)
    const n = Math.min(chunk.length, PREFACE.length)
    const isH2 = chunk.subarray(0, n).equals(PREFACE.subarray(0, n))
    if (isH2) h2.emit('connection', socket)
    else http1(socket)
    process.nextTick(() => socket.resume())
  })
  socket.on('error', () => {})
}

/** The protocols a request asks to upgrade to (`Connection: Upgrade` with `Upgrade: …`), lower case. */
function upgradesTo (req: http.IncomingMessage): string[] {
  const connection = String(req.headers.connection ?? '').toLowerCase().split(',').map(t => t.trim())
  if (!connection.includes('upgrade')) return []
  return String(req.headers.upgrade ?? '').toLowerCase().split(',').map(p => p.trim().split('/')[0] ?? '').filter(p => p !== '')
}
