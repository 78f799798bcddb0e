// Through koffi and the real kernel: a Node process that loaded TLS and HTTP
// unmaps most of its file-backed pages, and keeps working afterwards.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)
const module = new URL('../../../src/bin/startup-pages.ts', import.meta.url).href

test('unmapStartupPages drops most file-backed pages from a running Node process, which keeps working', async () => {
  const script = `
    import { unmapStartupPages, fileBackedMB } from ${JSON.stringify(module)}
    import { createServer, connect } from 'node:net'
    await import('node:tls'); await import('node:http')
    const r = await unmapStartupPages()
    // Still works: a TCP round trip on loopback after the pages left.
    const server = createServer(s => s.pipe(s)).listen(0, '127.0.0.1')
    await new Promise(resolve => server.once('listening', resolve))
    const echoed = await new Promise(resolve => { const c = connect(server.address().port, '127.0.0.1', () => c.end('ping')); c.on('data', d => resolve(String(d))) })
    server.close()
    console.log(JSON.stringify({ ...r, echoed, later: fileBackedMB() }))`
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 })
  const r = JSON.parse(stdout) as { advised: number, refused: number, fileMBBefore: number, fileMBAfter: number, later: number, echoed: string }
  assert.equal(r.echoed, 'ping')
  assert.ok(r.advised > 0 && r.refused === 0, `advised ${r.advised}, refused ${r.refused}`)
  // Node with TLS maps about 33 MB of its binary; most of it goes.
  assert.ok(r.fileMBBefore > 20, `before: ${r.fileMBBefore} MB`)
  assert.ok(r.fileMBAfter < r.fileMBBefore / 2, `${r.fileMBBefore} MB → ${r.fileMBAfter} MB`)
  assert.ok(r.later < r.fileMBBefore, `later ${r.later} MB`)
})
