import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ADDRESSES_ANNOTATION, liveAddresses, replicaLeaseName } from '../../../src/gateway/index.ts'
import type { KubeObject } from '../../../src/kube/types.ts'

function lease (renewTime: unknown, leaseDurationSeconds: unknown, addresses?: string): KubeObject {
  return { metadata: { name: 'edgemesh-gateway.n', annotations: addresses === undefined ? {} : { [ADDRESSES_ANNOTATION]: addresses } }, spec: { renewTime, leaseDurationSeconds } } as unknown as KubeObject
}

test('a replica\'s addresses count while its Lease is renewed within its duration', () => {
  const renewed = Date.parse('2026-12-07T10:00:00.000000Z')
  const l = lease('2026-12-07T10:00:00.000000Z', 30, '10.0.0.5, 192.168.1.7')
  assert.deepEqual(liveAddresses(l, renewed + 29_999), ['10.0.0.5', '192.168.1.7'])
  assert.equal(liveAddresses(l, renewed + 30_000), undefined, 'expired: a replica that died drops out')
  assert.equal(liveAddresses(lease(undefined, 30, '10.0.0.5'), renewed), undefined, 'never renewed')
  assert.equal(liveAddresses(lease('2026-12-07T10:00:00Z', 'long', '10.0.0.5'), renewed), undefined)
})

test('what a Lease says is checked: only IP addresses, at most 64', () => {
  const now = Date.parse('2026-12-07T10:00:00Z')
  assert.deepEqual(liveAddresses(lease('2026-12-07T10:00:00Z', 30, '10.0.0.5,evil.example,,<script>,fd00::1'), now), ['10.0.0.5', 'fd00::1'])
  const many = Array.from({ length: 100 }, (_, i) => `10.0.${i}.1`).join(',')
  assert.equal(liveAddresses(lease('2026-12-07T10:00:00Z', 30, many), now)?.length, 64)
  assert.deepEqual(liveAddresses(lease('2026-12-07T10:00:00Z', 30), now), [])
})

test('Lease names: one per node, within the 253 characters of a name', () => {
  assert.equal(replicaLeaseName('edge-1'), 'edgemesh-gateway.edge-1')
  const long = replicaLeaseName('n'.repeat(250))
  assert.ok(long.length <= 253 && long.startsWith('edgemesh-gateway.'), long)
  assert.notEqual(long, replicaLeaseName(`${'n'.repeat(249)}m`))
})
