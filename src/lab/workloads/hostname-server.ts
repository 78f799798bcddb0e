/**
 * The `hostname` backend: HTTP on 9376 answering its pod name (POD_NAME),
 * else its node name (NODE_NAME), without a trailing newline like serve_hostname.
 * Usage: hostname-server.ts [--port 9376] [--host 0.0.0.0] [--name NAME]
 */
import { createServer } from 'node:http'
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
