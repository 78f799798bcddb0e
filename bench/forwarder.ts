// A bare Node forwarder, the ceiling the benches measure the agent against:
// what a userspace hop costs on this machine without any of the agent's logic.
// `entry` accepts plain TCP and forwards over TLS 1.3 (external PSK, the data
// path's cipher order) with --tls, else plain TCP; `exit` accepts TLS with
// --tls, else plain, and forwards plain. bench/proxy runs one entry (one hop),
// bench/tunnel an entry and an exit (two hops, as the data path has).
// With --libp2p the hop between entry and exit is one js-libp2p stream per
// connection over the agent's stack (TCP, our pnet, Noise on libsodium, Yamux,
// the buffer reclaimer) without any of its logic; an entry's <host>:<port> is
// then the exit's address and the exit's --map port.
//
//   node bench/forwarder.ts entry|exit --map <listenPort>=<host>:<port> [--map …] [--tls | --libp2p]
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import type { Socket } from 'node:net'
import tls from 'node:tls'
import { parseArgs } from 'node:util'
import { splice } from '../src/net/splice.ts'
import { cipherPreference } from '../src/datapath/wire.ts'
import { BufferReclaimer } from '../src/net/buffer-reclaimer.ts'
import { nativeNoiseCrypto } from '../src/tunnel/noise-crypto.ts'
import { createProtector } from '../src/tunnel/pnet.ts'
import { loadSodium } from '../src/tunnel/sodium.ts'
import { streamToDuplex } from '../src/tunnel/stream.ts'

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: { map: { type: 'string', multiple: true, default: [] }, tls: { type: 'boolean' }, libp2p: { type: 'boolean' } }
})
const role = positionals[0]
if (role !== 'entry' && role !== 'exit') throw new Error('usage: forwarder.ts entry|exit --map <listenPort>=<host>:<port> [--tls]')

// Both ends run from the same command line, so a fixed key is enough: only the
// cost of the cipher matters here.
const psk = Buffer.alloc(32, 7)
const ciphers = cipherPreference()
const tlsBase = { minVersion: 'TLSv1.3', ciphers } as const

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

const maps = (opt.map as string[]).map(m => {
  const match = /^(\d+)=([\d.]+):(\d+)$/.exec(m)
  if (match === null) throw new Error(`--map ${m}: expected <listenPort>=<host>:<port>`)
  return { listen: Number(match[1]), host: match[2] as string, port: Number(match[3]) }
})

if (opt.libp2p === true) await libp2pHop()
else tcpHop()

function tcpHop (): void {
  for (const { listen, host, port } of maps) {
    net.createServer({ noDelay: true }, raw => {
      splice(accept(raw), connectOut(host, port))
    }).listen(listen, () => { console.log(`forwarder ${role} listening on ${listen}`) })
  }
}

async function libp2pHop (): Promise<void> {
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }, { generateKeyPairFromSeed }, { peerIdFromPrivateKey }, { defaultCrypto }, { multiaddr }] = await Promise.all([
    import('libp2p'), import('@libp2p/tcp'), import('@chainsafe/libp2p-noise'), import('@chainsafe/libp2p-yamux'),
    import('@libp2p/crypto/keys'), import('@libp2p/peer-id'), import('@chainsafe/libp2p-noise/crypto'), import('@multiformats/multiaddr')
  ])
  const LIBP2P_PORT = 39000
  const window = 1024 * 1024
  const copied = new BufferReclaimer()
  const sodium = await loadSodium()
  const exitKey = await generateKeyPairFromSeed('Ed25519', Buffer.alloc(32, 1))
  const node = await createLibp2p({
    privateKey: role === 'exit' ? exitKey : await generateKeyPairFromSeed('Ed25519', Buffer.alloc(32, 2)),
    addresses: { listen: role === 'exit' ? [`/ip4/0.0.0.0/tcp/${LIBP2P_PORT}`] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise({ crypto: nativeNoiseCrypto(defaultCrypto, sodium) })],
    streamMuxers: [yamux({ maxEarlyStreams: 1024, streamOptions: { maxStreamWindowSize: window, maxReadBufferLength: 2 * window } })],
    connectionProtector: (await createProtector(psk, 'native', copied)).protector
  })
  for (const { listen, host, port } of maps) {
    if (role === 'exit') {
      await node.handle(`/bench/forward/${listen}`, stream => {
        splice(streamToDuplex(stream), net.connect({ host, port, noDelay: true }), { copied })
      }, { maxInboundStreams: 4096 })
      console.log(`forwarder exit listening on ${listen}`)
      continue
    }
    const exit = multiaddr(`/ip4/${host}/tcp/${LIBP2P_PORT}/p2p/${peerIdFromPrivateKey(exitKey).toString()}`)
    net.createServer({ noDelay: true }, raw => {
      raw.pause()
      node.dialProtocol(exit, `/bench/forward/${port}`, { maxOutboundStreams: 4096 }).then(stream => {
        splice(raw, streamToDuplex(stream), { copied })
      }, () => raw.destroy())
    }).listen(listen, () => { console.log(`forwarder entry listening on ${listen}`) })
  }
}
