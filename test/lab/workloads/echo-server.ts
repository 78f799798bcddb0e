/**
 * TCP or UDP echo server. With --reflect it answers with the ip:port it saw
 * the request come from (a tiny STUN: shows the NAT mapping).
 * Usage: echo-server.ts tcp|udp [--port 7] [--host 0.0.0.0] [--reflect]
 */
import { createServer } from 'node:net'
import { createSocket } from 'node:dgram'
import { parseArgs } from 'node:util'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string', default: '7' },
    host: { type: 'string', default: '0.0.0.0' },
    reflect: { type: 'boolean', default: false }
  }
})
const mode = positionals[0]
const port = Number(values.port)
const ready = (): void => { process.stdout.write(`listening ${mode} ${values.host}:${port}${values.reflect ? ' reflect' : ''}\n`) }
let close: () => void

if (mode === 'tcp') {
  // No Nagle: an echo waits for nothing (as latency-sensitive servers set it), so benches measure the path.
  const server = createServer({ noDelay: true }, sock => {
    sock.on('error', () => {})
    if (values.reflect) {
      sock.end(`${sock.remoteAddress}:${sock.remotePort}\n`)
      return
    }
    sock.pipe(sock)
  })
  server.listen(port, values.host, ready)
  close = () => { server.close() }
} else if (mode === 'udp') {
  const sock = createSocket('udp4')
  sock.on('message', (msg, rinfo) => {
    const reply = values.reflect ? Buffer.from(`${rinfo.address}:${rinfo.port}`) : msg
    sock.send(reply, rinfo.port, rinfo.address)
  })
  sock.bind(port, values.host, ready)
  close = () => { sock.close() }
} else {
  process.stderr.write('usage: echo-server.ts tcp|udp [--port 7] [--host 0.0.0.0] [--reflect]\n')
  process.exit(2)
}

const stop = (): void => {
  close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
