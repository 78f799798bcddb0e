// Floors for bench:gateway, the least any Node HTTP/1.1 proxy costs here:
//   bare-proxy.ts proxy PORT BACKEND_PORT   node:http server + one undici pool, no routing, no metrics
//   bare-proxy.ts proxy-http PORT BACKEND_PORT   the same with node:http's keep-alive client instead of undici
//   bare-proxy.ts server PORT               node:http server answering 64 bytes itself (no upstream at all)
//   bare-proxy.ts bytes PORT BACKEND_PORT   the least a Node HTTP/1.1 proxy can do: request heads passed on as
//                                           they came, responses framed by Content-Length only, one backend
//                                           connection per client connection; no parsing, no routing
import http from 'node:http'
import net from 'node:net'
import { Pool } from 'undici'

const [mode, portText, backendText] = process.argv.slice(2)
const body = 'x'.repeat(63) + '\n'
let server: http.Server | net.Server
if (mode === 'bytes') {
  server = net.createServer(client => {
    client.setNoDelay(true)
    const up = net.connect({ port: Number(backendText), host: '127.0.0.1', noDelay: true })
    let response: Buffer = Buffer.alloc(0)
    let left = -1
    client.on('data', (d: Buffer) => up.write(d))
    up.on('data', (d: Buffer) => {
      // Only the head's Content-Length is read, to know where each response ends (the backend's are small).
      if (left < 0) {
        response = response.length === 0 ? d : Buffer.concat([response, d])
        const end = response.indexOf('\r\n\r\n')
        if (end < 0) return
        left = Number(/content-length: *(\d+)/i.exec(response.toString('latin1', 0, end))?.[1] ?? 0) - (response.length - end - 4)
        d = response
        response = Buffer.alloc(0)
      } else left -= d.length
      client.write(d)
      if (left <= 0) left = -1
    })
    for (const s of [client, up]) s.on('error', () => { client.destroy(); up.destroy() }).on('close', () => { client.destroy(); up.destroy() })
  })
} else if (mode === 'server') {
  server = http.createServer((_req, res) => res.end(body))
} else if (mode === 'proxy-http') {
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 })
  server = http.createServer((req, res) => {
    http.get({ agent, host: '127.0.0.1', port: Number(backendText), path: req.url ?? '/', headers: { host: req.headers.host ?? '' } }, up => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    }).on('error', () => { res.statusCode = 502; res.end() })
  })
} else {
  const pool = new Pool(`http://127.0.0.1:${backendText ?? ''}`, { pipelining: 1 })
  server = http.createServer((req, res) => {
    pool.request({ method: 'GET', path: req.url ?? '/', headers: { host: req.headers.host ?? '' } }).then(up => {
      res.writeHead(up.statusCode, up.headers as http.OutgoingHttpHeaders)
      up.body.pipe(res)
    }, () => { res.statusCode = 502; res.end() })
  })
}
if (server instanceof http.Server) server.keepAliveTimeout = 60_000
server.listen(Number(portText), '127.0.0.1', () => console.log('listening'))
