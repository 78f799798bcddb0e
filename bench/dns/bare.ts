// The floor of a Node DNS server on this machine, run by bench:dns beside
// ours: one UDP socket that answers every query with one A record, copying
// the question and patching the ID. No lookup, no cache, no metrics.
//
//   node bench/dns/bare.ts [address] [port]
import { createSocket } from 'node:dgram'

const [address = '127.0.0.5', port = '5303'] = process.argv.slice(2)
// Name pointer to the question, type A, class IN, TTL 30, 10.96.0.1.
const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 0, 1])
const sock = createSocket({
  type: 'udp4',
  // Replies go to literal addresses: skip dns.lookup, as our server does.
  lookup: (addr, _options, cb) => { (cb as (err: null, address: string, family: number) => void)(null, addr, 4) }
})
sock.on('message', (query, peer) => {
  let end = 12
  while (end < query.length && query[end] !== 0) end += (query[end] as number) + 1
  end += 5
  if (end > query.length) return
  const reply = Buffer.allocUnsafe(end + answer.length)
  query.copy(reply, 0, 0, end)
  reply[2] = 0x84 | ((query[2] as number) & 0x01) // QR, AA, the client's RD
  reply[3] = 0x80 // RA, NOERROR
  reply.writeUInt16BE(1, 6)
  reply.writeUInt32BE(0, 8)
  answer.copy(reply, end)
  sock.send(reply, peer.port, peer.address)
})
sock.bind(Number(port), address, () => { process.stdout.write(`listening ${address}:${port}\n`) })
