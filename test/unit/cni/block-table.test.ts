// The routing plane's table of claims: from the API once it has listed them,
// kept in the state file, and read from there while the API cannot be reached
// (an edge node that restarts offline still routes to the other nodes' pods).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { informerBlockTable } from '../../../src/cni/blocks.ts'
import type { KubeObject } from '../../../src/kube/types.ts'
import { FakeInformer } from '../../helpers/fake-informer.ts'

const claim = (block: string, nodeName: string): KubeObject => ({
  metadata: { name: `edgemesh-block-${block.replace(/[./]/g, '-')}`, namespace: 'kubeedge', resourceVersion: '1', annotations: { 'edgemesh.kubeedge.io/cidr': block } },
  spec: { holderIdentity: nodeName }
} as unknown as KubeObject)

test('the API\'s claims are kept; a restart without the API routes by the kept ones, then by the API\'s once it lists', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-block-table-'))
  const file = join(dir, 'cni-routes.json')
  try {
    const online = new FakeInformer<KubeObject>('leases', [claim('10.244.64.0/24', 'edge-1'), claim('10.244.0.0/24', 'cloud-1')])
    const table = informerBlockTable(online, file)
    let changes = 0
    table.onChange(() => { changes++ })
    await online.start()
    assert.ok(changes > 0)
    // Written after the events of the list, asynchronously.
    let text: string | undefined
    for (let i = 0; i < 200 && text === undefined; i++) {
      await nextTurn()
      text = await readFile(file, 'utf8').catch(() => undefined)
    }
    const kept = JSON.parse(text ?? 'null') as unknown[]
    assert.deepEqual(new Set(kept.map(o => JSON.stringify(o))), new Set([{ block: '10.244.64.0/24', nodeName: 'edge-1' }, { block: '10.244.0.0/24', nodeName: 'cloud-1' }].map(o => JSON.stringify(o))))

    // The next start cannot reach the API: the kept table serves.
    const offline = new FakeInformer<KubeObject>('leases', [], false)
    const restarted = informerBlockTable(offline, file)
    await offline.start()
    assert.equal(restarted.owners().length, 2)
    // The API comes back with one claim gone: the live table wins.
    offline.upsert(claim('10.244.64.0/24', 'edge-1'))
    offline.sync()
    assert.deepEqual(restarted.owners(), [{ block: '10.244.64.0/24', nodeName: 'edge-1' }])
    // ...and is what is kept from then on (waited for: the write is in flight).
    let latest: unknown
    for (let i = 0; i < 200 && JSON.stringify(latest) !== JSON.stringify(restarted.owners()); i++) {
      await nextTurn()
      latest = await readFile(file, 'utf8').then(t => JSON.parse(t) as unknown, () => undefined)
    }
    assert.deepEqual(latest, [{ block: '10.244.64.0/24', nodeName: 'edge-1' }])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a missing or broken state file is an empty table, not an error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-block-table-'))
  try {
    assert.deepEqual(informerBlockTable(new FakeInformer<KubeObject>('leases', [], false), join(dir, 'none.json')).owners(), [])
    await writeFile(join(dir, 'broken.json'), '{"not": "a list"')
    assert.deepEqual(informerBlockTable(new FakeInformer<KubeObject>('leases', [], false), join(dir, 'broken.json')).owners(), [])
    await writeFile(join(dir, 'odd.json'), JSON.stringify([{ block: 1 }, { block: '10.244.1.0/24', nodeName: 'n' }]))
    assert.deepEqual(informerBlockTable(new FakeInformer<KubeObject>('leases', [], false), join(dir, 'odd.json')).owners(), [{ block: '10.244.1.0/24', nodeName: 'n' }])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
