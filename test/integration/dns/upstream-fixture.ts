/**
 * A small authoritative DNS server for tests: answers A for the names it is
 * given, NXDOMAIN with an SOA otherwise, over UDP and TCP; can force TC on
 * UDP and counts what it was asked. Also runnable as a lab process:
 *   node upstream-fixture.ts --host H --port P --name a.example.test=192.0.2.1 ...
 */
import { createSocket } from 'node:dgram'
import type { Socket as UdpSocket } from 'node:dgram'
import { createServer } from 'node:net'
import type { Server } from 'node:net'
import { parseArgs } from 'node:util'
import dnsPacket from 'dns-packet'

export interface FixtureUpstream {
  port: number
  queries: Array<{ name: string, type: string, tcp: boolean }>
  /** Answer UDP queries with TC set and no records (clients must retry over TCP). */
  truncateUdp: boolean
  close: () => Promise<void>
}

function answer (msg: Buffer, names: ReadonlyMap<string, string>, truncate: boolean): Buffer | undefined {
  let q: dnsPacket.DecodedPacket
  try { q = dnsPacket.decode(msg) } catch { return undefined }
  const question = q.questions?.[0]
  if (question === undefined) return undefined
  const ip = names.get(question.name.toLowerCase())
  const records: dnsPacket.Answer[] = ip !== undefined && question.type === 'A'
    ? Array.from({ length: truncate ? 0 : 1 }, () => ({ type: 'A' as const, name: question.name, ttl: 300, data: ip }))
    : []
  return dnsPacket.encode({
    id: q.id,
    type: 'response',
    flags: dnsPacket.AUTHORITATIVE_ANSWER | (truncate ? dnsPacket.TRUNCATED_RESPONSE : 0) | (ip === undefined ? 3 : 0),
    questions: [question],
    answers: records,
    authorities: ip === undefined ? [{ type: 'SOA', name: 'example.test', ttl: 60, data: { mname: 'ns.example.test', rname: 'h.example.test', serial: 1, refresh: 60, retry: 60, expire: 60, minimum: 10 } }] : []
  })
}

export async function startUpstream (host: string, names: Record<string, string>, port = 0): Promise<FixtureUpstream> {
  const table = new Map(Object.entries(names).map(([k, v]) => [k.toLowerCase(), v]))
  const udp: UdpSocket = createSocket('udp4')
  const fixture: FixtureUpstream = { port: 0, queries: [], truncateUdp: false, close: async () => {} }
  const note = (msg: Buffer, tcp: boolean): void => {
    try {
      const q = dnsPacket.decode(msg).questions?.[0]
      if (q !== undefined) fixture.queries.push({ name: q.name, type: q.type, tcp })
    } catch {}
  }
  udp.on('message', (msg, rinfo) => {
    note(msg, false)
    const out = answer(msg, table, fixture.truncateUdp)
    if (out !== undefined) udp.send(out, rinfo.port, rinfo.address)
  })
  await new Promise<void>(resolve => udp.bind(port, host, () => resolve()))
  fixture.port = udp.address().port
  const tcp: Server = createServer(sock => {
    let buf = Buffer.alloc(0)
    sock.on('error', () => {})
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0))
        buf = buf.subarray(2 + msg.length)
        note(msg, true)
        const out = answer(msg, table, false)
        if (out === undefined) continue
        const len = Buffer.alloc(2)
        len.writeUInt16BE(out.length)
        sock.write(Buffer.concat([len, out]))
      }
    })
  })
  await new Promise<void>(resolve => tcp.listen(fixture.port, host, () => resolve()))
  fixture.close = async () => {
    await new Promise<void>(resolve => udp.close(() => resolve()))
    await new Promise<void>(resolve => tcp.close(() => resolve()))
  }
  return fixture
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '0.0.0.0' }, port: { type: 'string', default: '53' }, name: { type: 'string', multiple: true, default: [] } } })
  const names = Object.fromEntries(values.name.map(n => n.split('=') as [string, string]))
  const up = await startUpstream(values.host, names, Number(values.port))
  process.stdout.write(`listening upstream ${values.host}:${up.port}\n`)
  process.on('SIGTERM', () => { up.close().then(() => process.exit(0), () => process.exit(1)) })
}
