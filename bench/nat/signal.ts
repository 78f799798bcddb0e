// bench/nat's signal server, on a relay: pairs the two TCP connections of a
// session (first line `<session> i|r`), answers each `go`, and then copies
// bytes both ways, as a relay splices the data path's channel.
//
//   signal.ts [--port 7000]
import { createServer } from 'node:net'
import type { Socket } from 'node:net'
import { parseArgs } from 'node:util'

const { values: opt } = parseArgs({ options: { port: { type: 'string', default: '7000' } } })
const waiting = new Map<string, Socket>()

const server = createServer(socket => {
  socket.on('error', () => {})
  let got = Buffer.alloc(0)
  const onData = (chunk: Buffer): void => {
    got = Buffer.concat([got, chunk])
    const at = got.indexOf('\n')
    if (at < 0) { if (got.length > 256) socket.destroy(); return }
    socket.off('data', onData)
    const session = got.subarray(0, at).toString().split(' ')[0] as string
    const rest = got.subarray(at + 1)
    const other = waiting.get(session)
    if (other === undefined) {
      waiting.set(session, socket)
      socket.pause()
      if (rest.length > 0) socket.unshift(rest)
      socket.once('close', () => { if (waiting.get(session) === socket) waiting.delete(session) })
      return
    }
    waiting.delete(session)
    other.write('go\n')
    socket.write('go\n')
    if (rest.length > 0) other.write(rest)
    other.pipe(socket)
    socket.pipe(other)
    other.resume()
    socket.once('close', () => other.destroy())
    other.once('close', () => socket.destroy())
  }
  socket.on('data', onData)
})
server.listen(Number(opt.port), () => { process.stdout.write('listening\n') })
process.on('SIGTERM', () => { server.close(); process.exit(0) })
