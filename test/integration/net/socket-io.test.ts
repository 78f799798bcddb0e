// peekFirstRecord on real sockets: a TLS session is only worth creating for a whole ClientHello record.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import { once } from 'node:events'
import { PassThrough } from 'node:stream'
import { peekFirstRecord, readExactly } from '../../../src/net/socket-io.ts'

async function pair (): Promise<{ client: Socket, server: Socket, close: () => void }> {
  const srv = createServer({ allowHalfOpen: true })
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const client = connect((srv.address() as { port: number }).port, '127.0.0.1')
  const [server] = await once(srv, 'connection') as [Socket]
  return { client, server, close: () => { client.destroy(); server.destroy(); srv.close() } }
}

test('a TLS record is peeked only once it is complete, and put back whole', async () => {
  const { client, server, close } = await pair()
  try {
    let settled = false
    const peeked = peekFirstRecord(server, 2000).finally(() => { settled = true })
    const record = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08]), Buffer.from('clienthe')])
    client.write(record.subarray(0, 1))
    await new Promise(resolve => setTimeout(resolve, 50))
    client.write(record.subarray(1, 9))
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(settled, false, 'not before the record is whole')
    client.write(Buffer.concat([record.subarray(9), Buffer.from('next')]))
    assert.equal(await peeked, 0x16)
    await new Promise(resolve => setTimeout(resolve, 20))
    assert.deepEqual(server.read(), Buffer.concat([record, Buffer.from('next')]))
  } finally {
    close()
  }
})

test('another first byte resolves at once; a partial record then EOF, or silence, rejects', async () => {
  const a = await pair()
  try {
    a.client.write('R')
    assert.equal(await peekFirstRecord(a.server, 2000), 0x52)
  } finally { a.close() }
  const b = await pair()
  try {
    b.client.end(Buffer.from([0x16, 0x03]))
    await assert.rejects(peekFirstRecord(b.server, 2000), /closed before a complete first record/)
  } finally { b.close() }
  const c = await pair()
  try {
    c.client.write(Buffer.from([0x16]))
    const t0 = performance.now()
    await assert.rejects(peekFirstRecord(c.server, 200), /no complete first record within 200 ms/)
    assert.ok(performance.now() - t0 < 1000)
  } finally { c.close() }
})

test('a stream that fails while a message is awaited rejects with its own error, and nothing is left listening', async () => {
  const stream = new PassThrough()
  stream.write(Buffer.from('abc'))
  const pending = readExactly(stream, 8, 5000)
  setImmediate(() => stream.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })))
  await assert.rejects(pending, /ECONNRESET/)
  assert.equal(stream.listenerCount('error'), 0)
  assert.equal(stream.listenerCount('readable'), 0)
})
