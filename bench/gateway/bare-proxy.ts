// Floors for bench:gateway, the least any Node HTTP/1.1 proxy costs here:
//   bare-proxy.ts proxy PORT BACKEND_PORT   node:http server + one undici pool, no routing, no metrics
//   bare-proxy.ts proxy-http PORT BACKEND_PORT   the same with node:http's keep-alive client instead of undici
//   bare-proxy.ts server PORT               node:http server answering 64 bytes itself (no upstream at all)
import http from 'node:http'
import { Pool } from 'undici'

const [mode, portText, backendText] = process.argv.slice(2)
const body = 'x'.repeat(63) + '\n'
let server: http.Server
if (mode === 'server') {
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
server.keepAliveTimeout = 60_000
server.listen(Number(portText), '127.0.0.1', () => console.log('listening'))
