import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { WarnSummary } from '../../../src/observability/warn-summary.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'

test('failed connections are warned about at once, then summed up at most once per interval with counts', async () => {
  const lines: LogLine[] = []
  const f = new WarnSummary(recordingLogger(lines), 'proxied connections failed', 200)
  f.record('default/web no endpoints')
  const warns = (): LogLine[] => lines.filter(l => l.level === 'warn')
  assert.equal(warns().length, 1, 'the first failure of a quiet period is loud at once')
  for (let i = 0; i < 500; i++) f.record(`${i % 5 === 0 ? 'default/db' : 'default/web'} PeerUnreachableError`)
  assert.equal(warns().length, 1, 'no flood: the rest wait for the interval')
  await delay(300)
  assert.equal(warns().length, 2)
  const sum = warns()[1]?.fields as { failed?: number, top?: Record<string, number> }
  assert.equal(sum.failed, 500)
  assert.deepEqual(sum.top, { 'default/web PeerUnreachableError': 400, 'default/db PeerUnreachableError': 100 })
  await delay(300)
  assert.equal(warns().length, 2, 'nothing to report, nothing logged')
  f.stop()
})
