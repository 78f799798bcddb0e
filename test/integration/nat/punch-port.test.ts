// The punching socket keeps its port across restarts (so the router renews
// one mapping instead of gaining one per start), and takes another when that
// port is taken.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Registry } from 'prom-client'
import { DirectPathMetrics, DirectPaths } from '../../../src/nat/index.ts'
import { noopLogger } from '../../../src/observability/logger.ts'

function paths (portFile: string): DirectPaths {
  return new DirectPaths({
    logger: noopLogger,
    metrics: new DirectPathMetrics(new Registry()),
    nat: () => undefined,
    rendezvous: { openChannel: async () => undefined, handleChannel: () => {}, serve: () => {} }
  }, { nodeName: 'node-a', pnetKey: randomBytes(32), host: '127.0.0.1', portFile })
}

test('a restart binds the port the last start used; a taken one is replaced and the new one kept', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-punch-port-'))
  t.after(async () => { await rm(dir, { recursive: true, force: true }) })
  // The state directory does not exist yet: it is made.
  const file = join(dir, 'state', 'punch-port')
  const first = paths(file)
  await first.start()
  const port = first.datagrams()?.port as number
  assert.ok(port > 0)
  assert.equal(await readFile(file, 'utf8'), `${port}\n`)
  await first.stop()

  const second = paths(file)
  await second.start()
  assert.equal(second.datagrams()?.port, port)
  await second.stop()

  const squatter = createSocket('udp4')
  await new Promise<void>(resolve => squatter.bind(port, '127.0.0.1', resolve))
  t.after(() => { squatter.close() })
  const third = paths(file)
  await third.start()
  const other = third.datagrams()?.port as number
  assert.notEqual(other, port)
  assert.equal(await readFile(file, 'utf8'), `${other}\n`)
  await third.stop()
})
