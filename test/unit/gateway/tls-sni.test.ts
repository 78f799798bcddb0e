import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { readServerName } from '../../../src/gateway/index.ts'

/** The first bytes a real Node TLS client sends. */
async function clientHello (servername: string | undefined): Promise<Buffer> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  const client = tls.connect({ host: '127.0.0.1', port, ...(servername !== undefined ? { servername } : {}), rejectUnauthorized: false })
  client.on('error', () => {})
  const [socket] = await once(server, 'connection') as [net.Socket]
  const [data] = await once(socket, 'data') as [Buffer]
  client.destroy()
  socket.destroy()
  server.close()
  return data
}

test('the server name of a real ClientHello, byte by byte until it is complete', async () => {
  const hello = await clientHello('Shop.Example.com')
  assert.deepEqual(readServerName(hello), { state: 'done', serverName: 'shop.example.com' })
  for (const cut of [0, 3, 5, 40, hello.length - 1]) assert.deepEqual(readServerName(hello.subarray(0, cut)), { state: 'need-more' }, `cut at ${cut}`)
})

test('a ClientHello without SNI, and bytes that are not TLS', async () => {
  // Node sends no SNI for an IP address.
  assert.deepEqual(readServerName(await clientHello(undefined)), { state: 'done', serverName: undefined })
  assert.deepEqual(readServerName(Buffer.from('GET / HTTP/1.1\r\n\r\n')), { state: 'not-tls' })
  const oversized = Buffer.from([0x16, 3, 1, 0xff, 0xff])
  assert.deepEqual(readServerName(oversized), { state: 'not-tls' })
})

test('truncated or lying lengths inside the hello never throw', async () => {
  const hello = await clientHello('a.example.com')
  for (let i = 9; i < Math.min(hello.length, 200); i++) {
    const broken = Buffer.from(hello)
    broken[i] = 0xff
    assert.doesNotThrow(() => readServerName(broken), `byte ${i}`)
  }
})
