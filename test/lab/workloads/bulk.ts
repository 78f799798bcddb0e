/**
 * Bulk TCP transfer that measures throughput, for checking bandwidth limits.
 *   bulk.ts server [--port 5201] [--host 0.0.0.0]
 *   bulk.ts client HOST:PORT up|down [--bytes 4000000]
 * The client sends one header line, "up N" (client sends N bytes, the server
 * times them and answers with JSON) or "down N" (the server sends, the client
 * times). Timing starts at the first data byte, so the handshake is excluded.
 * The client prints { direction, bytes, seconds, bitsPerSecond }.
 */
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import { parseArgs } from 'node:util'

export interface BulkResult {
  direction: 'up' | 'down'
  bytes: number
  seconds: number
  bitsPerSecond: number
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string', default: '5201' },
    host: { type: 'string', default: '0.0.0.0' },
    bytes: { type: 'string', default: '4000000' }
  }
})

const chunk = Buffer.alloc(64 * 1024, 0x61)

/** Writes `bytes` respecting backpressure, then half-closes. */
function sendBytes (sock: Socket, bytes: number): void {
  let left = bytes
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, chunk.length)
      left -= n
      if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        sock.once('drain', pump)
        return
      }
    }
    sock.end()
  }
  pump()
}

/** Counts `bytes` from the socket (after `already` bytes seen), timing from the first. */
function receiveBytes (sock: Socket, bytes: number, already: Buffer): Promise<{ bytes: number, seconds: number }> {
  return new Promise((resolve, reject) => {
    let got = 0
    let t0 = 0
    const count = (b: Buffer): void => {
      if (b.length === 0) return
      if (got === 0) t0 = performance.now()
      got += b.length
      if (got >= bytes) {
        sock.off('data', count)
        resolve({ bytes: got, seconds: (performance.now() - t0) / 1000 })
      }
    }
    sock.on('data', count)
    sock.on('error', reject)
    sock.on('end', () => { if (got < bytes) reject(new Error(`stream ended after ${got} of ${bytes} bytes`)) })
    count(already)
    sock.resume()
  })
}

function readHeader (sock: Socket): Promise<[string, Buffer]> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    const onData = (b: Buffer): void => {
      buf = Buffer.concat([buf, b])
      const nl = buf.indexOf(0x0a)
      if (nl < 0) {
        if (buf.length > 1024) reject(new Error('no header line'))
        return
      }
      // Paused, so nothing is lost before the body reader attaches.
      sock.pause()
      sock.off('data', onData)
      resolve([buf.subarray(0, nl).toString(), buf.subarray(nl + 1)])
    }
    sock.on('data', onData)
    sock.on('error', reject)
  })
}

const rate = (bytes: number, seconds: number): number => Math.round(bytes * 8 / seconds)

if (positionals[0] === 'server') {
  const server = createServer(sock => {
    sock.on('error', () => {})
    readHeader(sock).then(async ([header, rest]) => {
      const [direction, n] = header.split(' ')
      const bytes = Number(n)
      if (direction === 'down') {
        sendBytes(sock, bytes)
        return
      }
      const r = await receiveBytes(sock, bytes, rest)
      sock.end(JSON.stringify({ direction: 'up', bytes: r.bytes, seconds: r.seconds, bitsPerSecond: rate(r.bytes, r.seconds) }) + '\n')
    }).catch(() => sock.destroy())
  })
  server.listen(Number(values.port), values.host, () => {
    process.stdout.write(`listening bulk ${values.host}:${values.port}\n`)
  })
  const stop = (): void => {
    server.close()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else if (positionals[0] === 'client' && positionals[1] !== undefined && (positionals[2] === 'up' || positionals[2] === 'down')) {
  const target = positionals[1]
  const direction = positionals[2]
  const bytes = Number(values.bytes)
  const i = target.lastIndexOf(':')
  const sock = connect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) })
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve)
    sock.once('error', reject)
  })
  sock.write(`${direction} ${bytes}\n`)
  let result: BulkResult
  if (direction === 'down') {
    const r = await receiveBytes(sock, bytes, Buffer.alloc(0))
    result = { direction, bytes: r.bytes, seconds: r.seconds, bitsPerSecond: rate(r.bytes, r.seconds) }
  } else {
    sendBytes(sock, bytes)
    const chunks: Buffer[] = []
    for await (const b of sock) chunks.push(b as Buffer)
    result = JSON.parse(Buffer.concat(chunks).toString()) as BulkResult
  }
  sock.destroy()
  process.stdout.write(JSON.stringify(result) + '\n')
} else {
  process.stderr.write('usage: bulk.ts server [--port 5201] | bulk.ts client HOST:PORT up|down [--bytes N]\n')
  process.exit(2)
}
