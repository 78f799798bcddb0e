// bench/handshake: what one TLS 1.3 external-PSK handshake costs in Node on
// this machine, as the data path makes them (src/datapath/datapath.ts), against
// the two settings it replaced: an OpenSSL context built per connection, and
// OpenSSL 3.5's default key exchange (which offers hybrid X25519MLKEM768).
// Client and server in one process on loopback, one handshake + one 1-byte
// exchange at a time; CPU is both ends together.
//
//   npm run bench:handshake [-- --handshakes 300 --runs 5]
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { connect, createSecureContext, TLSSocket } from 'node:tls'
import type { SecureContext } from 'node:tls'
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { cpus } from 'node:os'
import { cipherPreference, KEY_EXCHANGE_GROUP } from '../src/datapath/wire.ts'
import { median, takeBenchLock } from './netns.ts'

takeBenchLock('bench:handshake')

const { values } = parseArgs({ options: { handshakes: { type: 'string', default: '300' }, runs: { type: 'string', default: '5' } } })
const HANDSHAKES = Number(values.handshakes)
const RUNS = Number(values.runs)
const KEY = randomBytes(32)
const CIPHERS = cipherPreference()

interface Variant { label: string, context: () => SecureContext | undefined, ecdhCurve?: string }
const shared = createSecureContext({ minVersion: 'TLSv1.3', ciphers: CIPHERS })
const sharedX25519 = createSecureContext({ minVersion: 'TLSv1.3', ciphers: CIPHERS, ecdhCurve: KEY_EXCHANGE_GROUP })
const VARIANTS: Variant[] = [
  { label: 'a context per connection, default key exchange', context: () => undefined },
  { label: 'one shared context, default key exchange', context: () => shared },
  { label: `one shared context, ${KEY_EXCHANGE_GROUP} alone (the data path)`, context: () => sharedX25519 }
]

/** Median handshake + first exchange time (ms) and CPU per handshake, both ends (ms). */
async function measure (v: Variant): Promise<{ ms: number, cpuMs: number }> {
  const server = createServer(raw => {
    const context = v.context()
    // pskCallback is missing from @types/node's TLSSocketOptions, though Node takes it there.
    const options: Record<string, unknown> = { isServer: true, ...(context !== undefined ? { secureContext: context } : { minVersion: 'TLSv1.3', ciphers: CIPHERS }), pskCallback: () => KEY }
    const s = new TLSSocket(raw, options)
    s.on('error', () => {})
    s.on('data', d => { s.write(d) })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const times: number[] = []
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < HANDSHAKES; i++) {
    const t0 = performance.now()
    const context = v.context()
    const s = connect({ host: '127.0.0.1', port, ...(context !== undefined ? { secureContext: context } : { minVersion: 'TLSv1.3', ciphers: CIPHERS }), pskCallback: () => ({ psk: KEY, identity: 'a>b' }), checkServerIdentity: () => undefined })
    await new Promise<void>((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject) })
    await new Promise<void>(resolve => { s.once('data', () => { resolve() }); s.write('x') })
    times.push(performance.now() - t0)
    s.destroy()
  }
  const cpu = process.cpuUsage(cpu0)
  await new Promise(resolve => server.close(resolve))
  return { ms: median(times), cpuMs: (cpu.user + cpu.system) / 1000 / HANDSHAKES }
}

const results = new Map<string, Array<{ ms: number, cpuMs: number }>>(VARIANTS.map(v => [v.label, []]))
for (let run = 0; run < RUNS; run++) {
  // Rotating order, so drifts in the machine's load hit every variant alike.
  for (let i = 0; i < VARIANTS.length; i++) {
    const v = VARIANTS[(i + run) % VARIANTS.length] as Variant
    results.get(v.label)?.push(await measure(v))
  }
}
const base = median(results.get(VARIANTS[0]?.label as string)?.map(r => r.cpuMs) ?? [])
console.log(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, OpenSSL ${process.versions.openssl}; ${HANDSHAKES} handshakes per run, medians of ${RUNS} runs; suites ${CIPHERS}.`)
console.log('')
console.log('| handshake | handshake + first exchange p50 ms | CPU per handshake, both ends, ms | CPU ÷ per-connection context |')
console.log('|---|---|---|---|')
for (const v of VARIANTS) {
  const rs = results.get(v.label) ?? []
  const cpu = median(rs.map(r => r.cpuMs))
  console.log(`| ${v.label} | ${median(rs.map(r => r.ms)).toFixed(2)} | ${cpu.toFixed(2)} | ${(cpu / base).toFixed(2)} |`)
}
