// The data path port against clients that never prove the PSK: one byte and
// gone, slow drips, idle floods. Each is closed within the handshake
// deadline, counted, and capped, and real peers keep getting through.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import type { Server, Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { Registry } from 'prom-client'
import { DataPath } from '../../../src/datapath/datapath.ts'
import type { DataPathInit } from '../../../src/datapath/datapath.ts'
import { RELAY_MAGIC } from '../../../src/datapath/wire.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { eventually } from '../../helpers/control-plane.ts'
import { roundTrip, startEcho } from '../../helpers/net.ts'

const KEY = randomBytes(32)

describe('DataPath: connections that do not prove the PSK', () => {
  let echo: Server
  let echoPort: number
  const paths: DataPath[] = []
  const lines: LogLine[] = []
  const registry = new Registry()
  // A short deadline for the drip, cap and relay cases.
  let server: DataPath
  // A long one: what closes a half-sent handshake there is the client's EOF, not the deadline.
  let patient: DataPath
  const patientRegistry = new Registry()

  async function node (nodeName: string, extra: Partial<DataPathInit>, logger = noopLogger, metrics = new Registry()): Promise<DataPath> {
    const d = new DataPath({ logger, metrics }, { nodeName, port: 0, listenHost: '127.0.0.1', pnetKey: KEY, isRelay: false, ...extra })
    await d.start()
    paths.push(d)
    return d
  }

  async function rejected (reason: string, reg = registry): Promise<number> {
    const m = await reg.getSingleMetric('edgemesh_datapath_rejected_connections_total')?.get()
    return m?.values.find(v => v.labels.reason === reason)?.value ?? 0
  }

  function open (first?: Buffer, to = server): Socket {
    const s = connect({ host: '127.0.0.1', port: to.port() })
    s.on('error', () => {})
    if (first !== undefined) s.write(first)
    return s
  }

  before(async () => {
    ;({ server: echo, port: echoPort } = await startEcho())
    server = await node('node-b', { isRelay: true, admission: { handshakeTimeoutMs: 500, maxPending: 40, maxPendingPerSource: 20 } }, noopLogger, registry)
    patient = await node('node-c', { admission: { handshakeTimeoutMs: 10_000 } }, recordingLogger(lines), patientRegistry)
  })

  after(async () => {
    for (const d of paths) await d.stop()
    echo.close()
  })

  test('a TLS record header and gone: the socket is released at once, counted, and warned about once', async () => {
    const clients = Array.from({ length: 300 }, () => { const s = open(Buffer.from([0x16]), patient); s.end(); return s })
    // Long before the 10 s deadline: each is released on the client's EOF (or refused over the cap).
    const ms = await eventually('every one is counted', async () =>
      await rejected('eof_before_handshake', patientRegistry) + await rejected('too_many_pending', patientRegistry) === 300, 8000, 20)
    assert.ok(ms < 8000)
    assert.equal(await rejected('handshake_timeout', patientRegistry), 0)
    await eventually('every socket is released', () => patient.openConnections() === 0, 1000, 10)
    clients.forEach(c => c.destroy())
    assert.equal(lines.filter(l => l.level === 'warn' && /before proving the PSK/.test(l.msg)).length, 1, 'one rate-limited warn with counts')
  })

  test('a client that drips one byte at a time is cut at the handshake deadline', async () => {
    const before = await rejected('handshake_timeout')
    const s = open(Buffer.from([0x16]))
    const drip = setInterval(() => s.write(Buffer.from([0x03])), 100)
    const t0 = performance.now()
    await new Promise(resolve => s.once('close', resolve))
    clearInterval(drip)
    assert.ok(performance.now() - t0 < 2000, 'closed within the deadline, not kept alive by the drip')
    assert.equal(await rejected('handshake_timeout'), before + 1)
  })

  test('a relay request that never comes is cut at the deadline too', async () => {
    const s = open(Buffer.from([RELAY_MAGIC]))
    s.resume()
    const t0 = performance.now()
    await new Promise(resolve => s.once('close', resolve))
    assert.ok(performance.now() - t0 < 2000)
  })

  test('idle connections beyond the per-source cap are closed at once; a real peer gets through afterwards', async () => {
    const before = await rejected('too_many_pending')
    const idle = Array.from({ length: 30 }, () => open())
    await eventually('the extra ones are refused', async () => await rejected('too_many_pending') >= before + 10, 2000, 20)
    assert.ok(server.openConnections() <= 20)
    await eventually('the held ones time out', () => server.openConnections() === 0, 3000, 20)
    idle.forEach(s => s.destroy())
    const a = await node('node-a', {})
    const conn = await a.dial({ nodeName: 'node-b', direct: [{ host: '127.0.0.1', port: server.port() }], relays: [] }, { ip: '127.0.0.1', port: echoPort })
    assert.equal((await roundTrip(conn.socket, Buffer.from('still serving'))).toString(), 'still serving')
  })
})
