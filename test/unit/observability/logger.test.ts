import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { createLogger } from '../../../src/observability/logger.ts'

async function capture (format: 'json' | 'pretty', fn: (log: Awaited<ReturnType<typeof createLogger>>) => void): Promise<string> {
  const out = new PassThrough()
  let text = ''
  out.on('data', (c: Buffer) => { text += c.toString() })
  const log = await createLogger({ destination: out, format, level: 'info' })
  fn(log)
  await new Promise(resolve => setImmediate(resolve))
  return text
}

test('JSON logs carry level, component and fields; debug is off at info', async () => {
  const text = await capture('json', log => {
    const dns = log.forComponent('dns')
    dns.debug('per query', { q: 'a' })
    dns.info('listening', { port: 53 })
    log.setLevel('debug')
    dns.debug('now visible')
  })
  const lines = text.trim().split('\n').map(l => JSON.parse(l))
  assert.deepEqual(lines.map(l => [l.level, l.component, l.msg]), [['info', 'dns', 'listening'], ['debug', 'dns', 'now visible']])
  assert.equal(lines[0].port, 53)
  assert.match(lines[0].time, /^\d{4}-\d\d-\d\dT/)
})

test('pretty logs are readable text for a terminal', async () => {
  const text = await capture('pretty', log => log.forComponent('proxy').warn('endpoint down', { endpoint: '10.0.0.1:80' }))
  assert.doesNotMatch(text, /^\{/)
  assert.match(text, /WARN/)
  assert.match(text, /endpoint down/)
  assert.match(text, /10\.0\.0\.1:80/)
})
