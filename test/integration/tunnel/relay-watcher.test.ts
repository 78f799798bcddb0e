// RelayWatcher on a real directory: rewrites that leave the file's bytes as
// they were are not parsed again; edits are.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { RelayWatcher } from '../../../src/tunnel/relay-watcher.ts'
import { recordingLogger } from '../../helpers/recording-logger.ts'
import type { LogLine } from '../../helpers/recording-logger.ts'
import { eventually } from '../../helpers/control-plane.ts'

describe('RelayWatcher', () => {
  test('parses the file again only when its bytes change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relay-watcher-'))
    const file = join(dir, 'edgemesh-agent.yaml')
    // Replaced by rename, as a ConfigMap update or an editor does.
    const replace = (text: string): void => { writeFileSync(file + '.tmp', text); renameSync(file + '.tmp', file) }
    replace('["relay-1"]')
    let reads = 0
    const applied: string[][] = []
    const log: LogLine[] = []
    const watcher = new RelayWatcher<string[]>({ logger: recordingLogger(log) }, {
      file,
      read: async f => { reads++; return JSON.parse(await readFile(f, 'utf8')) as string[] },
      apply: async relays => { applied.push(relays) }
    })
    await watcher.start()
    try {
      assert.equal(reads, 1)
      replace('["relay-1"]')
      replace('["relay-1"]')
      // Past the watch's debounce (200 ms): nothing was parsed or applied.
      await sleep(800)
      assert.equal(reads, 1, 'the same bytes again are not parsed')
      assert.deepEqual(applied, [])

      replace('["relay-1", "relay-2"]')
      await eventually('the edit is applied', () => applied.length === 1, 5000, 20)
      assert.deepEqual(applied, [['relay-1', 'relay-2']])

      replace('{ broken')
      await eventually('the broken edit is reported', () => log.some(l => l.level === 'error'), 5000, 20)
      replace('["relay-2"]')
      await eventually('the fixed file is applied', () => applied.length === 2, 5000, 20)
      assert.deepEqual(applied[1], ['relay-2'])
    } finally {
      await watcher.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
