/**
 * The `hostname` backend: HTTP on 9376 answering its pod name (POD_NAME),
 * else its node name (NODE_NAME), without a trailing newline like serve_hostname.
 * A WebSocket upgrade is accepted too: each text message is answered with
 * `<name>: <message>` (enough to show an upgrade passes through a proxy).
 * Usage: hostname-server.ts [--port 9376] [--host 0.0.0.0] [--name NAME]
 */
import { createServer } from 'node:http'
import { createHash } from 'node:crypto'
import { hostname } from 'node:os'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9376' },
    host: { type: 'string', default: '0.0.0.0' },
    name: { type: 'string' }
  }
})
const name = values.name ?? process.env.POD_NAME ?? process.env.NODE_NAME ?? hostname()
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' })
  res.end(name)
})
server.on('upgrade', (req, socket) => {
  const key = req.headers['sec-websocket-key']
  if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') { socket.destroy(); return }
  const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
  let buf = Buffer.alloc(0)
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    // Masked client frames with payloads under 126 bytes: all this test server needs.
    while (buf.length >= 6) {
      const opcode = (buf[0] as number) & 0x0f
      const len = (buf[1] as number) & 0x7f
      if (buf.length < 6 + len) return
      const mask = buf.subarray(2, 6)
      const payload = Buffer.from(buf.subarray(6, 6 + len).map((b, i) => b ^ (mask[i % 4] as number)))
      buf = buf.subarray(6 + len)
      if (opcode === 8) { socket.end(Buffer.from([0x88, 0])); return }
      const reply = Buffer.from(`${name}: ${payload.toString()}`)
      socket.write(Buffer.concat([Buffer.from([0x81, reply.length]), reply]))
    }
  })
  socket.on('error', () => {})
})
server.listen(Number(values.port), values.host, () => {
  process.stdout.write(`listening ${values.host}:${values.port} as ${name}\n`)
})
const stop = (): void => {
  server.close()
  server.closeAllConnections()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
