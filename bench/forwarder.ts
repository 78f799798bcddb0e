// A bare Node forwarder, the ceiling the benches measure the agent against:
// what a userspace hop costs on this machine without any of the agent's logic.
// `entry` accepts plain TCP and forwards over TLS 1.3 (external PSK, the data
// path's cipher order) with --tls, else plain TCP; `exit` accepts TLS with
// --tls, else plain, and forwards plain. bench/proxy runs one entry (one hop),
// bench/tunnel an entry and an exit (two hops, as the data path has).
//
//   node bench/forwarder.ts entry|exit --map <listenPort>=<host>:<port> [--map …] [--tls]
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import type { Socket } from 'node:net'
import tls from 'node:tls'
import { parseArgs } from 'node:util'
import { cipherPreference } from '../src/datapath/wire.ts'

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: { map: { type: 'string', multiple: true, default: [] }, tls: { type: 'boolean' } }
})
const role = positionals[0]
if (role !== 'entry' && role !== 'exit') throw new Error('usage: forwarder.ts entry|exit --map <listenPort>=<host>:<port> [--tls]')

// Both ends run from the same command line, so a fixed key is enough: only the
// cost of the cipher matters here.
const psk = Buffer.alloc(32, 7)
const ciphers = cipherPreference()
const tlsBase = { minVersion: 'TLSv1.3', ciphers } as const

function pipeBoth (a: Socket, b: Socket): void {
  a.pipe(b)
  b.pipe(a)
  a.on('error', () => b.destroy())
  b.on('error', () => a.destroy())
  a.on('close', () => b.destroy())
  b.on('close', () => a.destroy())
}

function connectOut (host: string, port: number): Socket {
  if (role === 'entry' && opt.tls === true) {
    const identity = `bench-${randomBytes(4).toString('hex')}`
    return tls.connect({ ...tlsBase, host, port, pskCallback: () => ({ psk, identity }), checkServerIdentity: () => undefined })
  }
  return net.connect({ host, port, noDelay: true })
}

function accept (raw: Socket): Socket {
  if (role === 'exit' && opt.tls === true) {
    return new tls.TLSSocket(raw, { ...tlsBase, isServer: true, pskCallback: () => psk } as ConstructorParameters<typeof tls.TLSSocket>[1])
  }
  return raw
}

for (const m of opt.map as string[]) {
  const match = /^(\d+)=([\d.]+):(\d+)$/.exec(m)
  if (match === null) throw new Error(`--map ${m}: expected <listenPort>=<host>:<port>`)
  const [, listen, host, port] = match
  net.createServer({ noDelay: true }, raw => {
    pipeBoth(accept(raw), connectOut(host as string, Number(port)))
  }).listen(Number(listen), () => { console.log(`forwarder ${role} listening on ${listen}`) })
}
