// Through koffi and the real kernel: a Node process that loaded TLS and HTTP
// frees most of its file-backed pages, and keeps working afterwards.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const module = new URL('../../../src/bin/startup-pages.ts', import.meta.url).href

test('pageOutFileMappings frees file-backed pages of a running Node process', async t => {
  // Its own copy of the binary, as in the image: the kernel leaves pages
  // that another process maps (this test runner's) where they are.
  const dir = mkdtempSync(join(tmpdir(), 'edgemesh-pages-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const node = join(dir, 'node')
  copyFileSync(process.execPath, node)
  chmodSync(node, 0o755)
  const script = `
    import { pageOutFileMappings, fileBackedMB } from ${JSON.stringify(module)}
    import { createServer, connect } from 'node:net'
    await import('node:tls'); await import('node:http')
    const r = await pageOutFileMappings()
    // Still works: a TCP round trip on loopback after the pages left.
    const server = createServer(s => s.pipe(s)).listen(0, '127.0.0.1')
    await new Promise(resolve => server.once('listening', resolve))
    const echoed = await new Promise(resolve => { const c = connect(server.address().port, '127.0.0.1', () => c.end('ping')); c.on('data', d => resolve(String(d))) })
    server.close()
    console.log(JSON.stringify({ ...r, echoed, later: fileBackedMB() }))`
  const { stdout } = await run(node, ['--input-type=module', '-e', script], { timeout: 30_000 })
  const r = JSON.parse(stdout) as { advised: number, refused: number, fileMBBefore: number, fileMBAfter: number, later: number, echoed: string }
  assert.equal(r.echoed, 'ping')
  assert.ok(r.advised > 0 && r.refused === 0, `advised ${r.advised}, refused ${r.refused}`)
  // Node with TLS maps about 33 MB of its binary; most of it goes.
  assert.ok(r.fileMBBefore > 20, `before: ${r.fileMBBefore} MB`)
  assert.ok(r.fileMBAfter < r.fileMBBefore / 2, `${r.fileMBBefore} MB → ${r.fileMBAfter} MB`)
  assert.ok(r.later < r.fileMBBefore, `later ${r.later} MB`)
})
