// The SOCKS5 proxy with real sockets and a hand-written SOCKS client: CONNECT
// to a node name reaches that node (through the dialer the agent uses for
// other nodes), and every unsupported or failing request gets a SOCKS reply.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import type { Server, Socket } from 'node:net'
import { Registry } from 'prom-client'
import { Socks5Server, SocksReply } from '../../../src/proxy/index.ts'
import { DirectDialer } from '../../../src/mesh/index.ts'
import type { DialTarget, EndpointDialer } from '../../../src/mesh/index.ts'
import { EndpointRefusedError } from '../../../src/mesh/index.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { startEcho } from '../../helpers/net.ts'

/** Reads until `n` bytes arrived (or the socket ended). */
async function read (s: Socket, n: number): Promise<Buffer> {
  let buf = Buffer.alloc(0)
  while (buf.length < n) {
    const chunk = await new Promise<Buffer | null>(resolve => {
      const onData = (d: Buffer): void => { cleanup(); resolve(d) }
      const onEnd = (): void => { cleanup(); resolve(null) }
      const cleanup = (): void => { s.off('data', onData); s.off('end', onEnd); s.off('close', onEnd) }
      s.on('data', onData)
      s.once('end', onEnd)
      s.once('close', onEnd)
    })
    if (chunk === null) break
    buf = Buffer.concat([buf, chunk])
  }
  return buf
}

describe('SOCKS5 proxy: nodes by name', () => {
  let echo: Server
  let echoPort: number
  let socks: Socks5Server
  const dialed: DialTarget[] = []
  const registry = new Registry()

  before(async () => {
    ;({ server: echo, port: echoPort } = await startEcho('echo:'))
    const direct = new DirectDialer()
    // Stands in for the tunnel: records where it was asked to go, then connects on loopback.
    const dialer: EndpointDialer = {
      dialTcp: async (t, signal) => {
        dialed.push(t)
        // The far agent reached, the endpoint refused: what a peer transport reports.
        if (t.port === 2) throw new EndpointRefusedError(t.nodeName ?? '', `${t.ip}:2`, 'ECONNREFUSED')
        return await direct.dialTcp({ ...t, ip: '127.0.0.1' }, signal)
      },
      dialUdp: async (t) => await direct.dialUdp(t)
    }
    const nodes: Record<string, string | null | undefined> = { 'edge-1': '127.0.0.1', 'edge-2': '10.0.0.2', 'edge-loop': '127.0.0.1', 'edge-unknown': undefined }
    socks = new Socks5Server({ logger: noopLogger, metrics: registry, dialer, nodeAddress: async name => name in nodes ? nodes[name] : null }, { listenIp: '127.0.0.1', port: 0, nodeName: 'edge-1' })
    await socks.start()
    await socks.start() // idempotent
  })

  after(async () => {
    await socks.stop()
    await socks.stop()
    echo.close()
  })

  async function request (greeting: number[], req: Buffer): Promise<{ socket: Socket, method: Buffer, reply: Buffer }> {
    const socket = connect({ host: '127.0.0.1', port: socks.port() })
    await new Promise(resolve => socket.once('connect', resolve))
    socket.write(Buffer.from(greeting))
    const method = await read(socket, 2)
    if (method[1] !== 0x00) return { socket, method, reply: Buffer.alloc(0) }
    // Sent in two pieces: the server must read the request whole.
    socket.write(req.subarray(0, 3))
    await new Promise(resolve => setTimeout(resolve, 20))
    socket.write(req.subarray(3))
    return { socket, method, reply: await read(socket, 10) }
  }
  const byName = (name: string, port: number, cmd = 0x01): Buffer =>
    Buffer.concat([Buffer.from([0x05, cmd, 0x00, 0x03, name.length]), Buffer.from(name), Buffer.from([port >> 8, port & 0xff])])

  test('CONNECT to a node name reaches it: the other node through the dialer with its name, this node directly', async () => {
    const { socket, method, reply } = await request([0x05, 0x02, 0x02, 0x00], byName('edge-2', echoPort))
    assert.deepEqual([...method], [0x05, 0x00])
    assert.equal(reply[1], SocksReply.OK)
    socket.end('through socks')
    assert.equal((await read(socket, 1 << 20)).toString(), 'echo:through socks')
    assert.deepEqual(dialed.at(-1), { ip: '10.0.0.2', port: echoPort, nodeName: 'edge-2', service: 'socks5' })
    const own = await request([0x05, 0x01, 0x00], byName('edge-1', echoPort))
    assert.equal(own.reply[1], SocksReply.OK)
    own.socket.end('self')
    assert.equal((await read(own.socket, 1 << 20)).toString(), 'echo:self')
    assert.equal(dialed.at(-1)?.nodeName, undefined, 'this node is dialed directly, not through the tunnel')
  })

  test('an unknown node, a closed port, other commands and address types get SOCKS error replies', async () => {
    assert.equal((await request([0x05, 0x01, 0x00], byName('no-such-node', echoPort))).reply[1], SocksReply.HOST_UNREACHABLE)
    assert.equal((await request([0x05, 0x01, 0x00], byName('edge-2', 1))).reply[1], SocksReply.REFUSED)
    assert.equal((await request([0x05, 0x01, 0x00], byName('edge-2', echoPort, 0x02))).reply[1], SocksReply.COMMAND_NOT_SUPPORTED)
    const ipv4 = Buffer.from([0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, echoPort >> 8, echoPort & 0xff])
    assert.equal((await request([0x05, 0x01, 0x00], ipv4)).reply[1], SocksReply.ADDRESS_NOT_SUPPORTED)
    const auth = await request([0x05, 0x01, 0x02], byName('edge-2', echoPort))
    assert.deepEqual([...auth.method], [0x05, 0xff], 'only no-authentication is offered')
    assert.equal((await request([0x05, 0x01, 0x00], byName('edge-2', 2))).reply[1], SocksReply.REFUSED, 'a refusal by the far agent is a refusal')
    const metric = await registry.getSingleMetric('edgemesh_socks5_connections_total')?.get()
    const by = Object.fromEntries((metric?.values ?? []).map(v => [String(v.labels.result), v.value]))
    assert.deepEqual(by, { ok: 2, unknown_node: 1, refused: 2, unsupported: 3 })
  })

  test('another node is never reached at its loopback, nor at an address nobody knows', async () => {
    const before = dialed.length
    assert.equal((await request([0x05, 0x01, 0x00], byName('edge-loop', echoPort))).reply[1], SocksReply.HOST_UNREACHABLE)
    assert.equal((await request([0x05, 0x01, 0x00], byName('edge-unknown', echoPort))).reply[1], SocksReply.HOST_UNREACHABLE)
    assert.equal(dialed.length, before, 'nothing dialed')
  })

  test('a request whose version byte is not 5 is dropped without a dial', async () => {
    const before = dialed.length
    const socket = connect({ host: '127.0.0.1', port: socks.port() })
    socket.on('error', () => {})
    await new Promise(resolve => socket.once('connect', resolve))
    socket.write(Buffer.from([0x05, 0x01, 0x00]))
    assert.deepEqual([...await read(socket, 2)], [0x05, 0x00])
    const v4 = byName('edge-2', echoPort)
    v4[0] = 0x04
    socket.write(v4)
    await new Promise(resolve => socket.once('close', resolve))
    assert.equal(dialed.length, before)
    const metric = await registry.getSingleMetric('edgemesh_socks5_connections_total')?.get()
    assert.equal(metric?.values.find(v => v.labels.result === 'bad_handshake')?.value, 1)
  })

  test('a client that is not on this node is closed before the greeting', async () => {
    const local = new Socks5Server({ logger: noopLogger, metrics: new Registry(), dialer: new DirectDialer(), nodeAddress: async () => '127.0.0.1', clients: { isLocal: address => address !== '127.0.0.1' } }, { listenIp: '127.0.0.1', port: 0, nodeName: 'edge-1' })
    await local.start()
    try {
      const socket = connect({ host: '127.0.0.1', port: local.port() })
      socket.on('error', () => {})
      await new Promise(resolve => socket.once('connect', resolve))
      socket.write(Buffer.from([0x05, 0x01, 0x00]))
      assert.equal((await read(socket, 2)).length, 0, 'no method selection, the connection is closed')
    } finally {
      await local.stop()
    }
  })
})
