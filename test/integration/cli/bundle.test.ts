// The production artifact: the esbuild bundle must run on its own (no type
// stripping, no node_modules for pino-pretty) and behave like the sources.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { bundleForBench } from '../../../bench/bundle.ts'

const run = promisify(execFile)

test('the bundled CLI prints its version and runs the demo', async () => {
  const bundle = await bundleForBench(new URL('../../../src/bin/edgemesh.ts', import.meta.url).pathname)
  const v = await run(process.execPath, [bundle, '--version'])
  assert.match(v.stdout, /^EdgeMesh-TS \d+\.\d+\.\d+ \(node v\d+/)
  const services = new URL('../../../examples/standalone/services.yaml', import.meta.url).pathname
  const demo = await run(process.execPath, [bundle, 'demo', '--once', '--services', services], { env: { PATH: process.env.PATH } })
  assert.match(demo.stdout, /default\/hostname-svc\s+10\.96\.0\.100/)
  await assert.rejects(run(process.execPath, [bundle, 'agent', '--config-file', '/nonexistent.yaml'], { env: { PATH: process.env.PATH, NODE_NAME: 'n', NAMESPACE: 'ns' } }),
    (err: { code?: number, stderr?: string }) => err.code === 2 && /does not exist/.test(err.stderr ?? ''))
})
