import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildEndpoints, buildServiceInfo, compactService, compactSlice, mergeEndpoints } from '../../../src/servicemap/build.ts'
import { serviceProxyFilter } from '../../../src/servicemap/filter.ts'
import { endpointsToSlice } from '../../../src/kube/endpoint-slice-source.ts'
import { slice, svc } from './fixtures.ts'

test('ClusterIP service: ports, defaults, dual-stack IPs', () => {
  const info = buildServiceInfo(svc('web', { clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5', 'fd00::5'], ports: [{ port: 80 }] }))
  assert.deepEqual(info.clusterIPs, ['10.96.0.5', 'fd00::5'])
  assert.equal(info.type, 'ClusterIP')
  assert.equal(info.headless, false)
  assert.deepEqual(info.ports, [{ name: '', protocol: 'TCP', port: 80 }])
  assert.equal(info.sessionAffinity, 'None')
  assert.equal(info.affinityTimeoutSeconds, 10800)
})

test('headless, ExternalName and ClientIP affinity', () => {
  const headless = buildServiceInfo(svc('db', { clusterIP: 'None', clusterIPs: ['None'] }))
  assert.equal(headless.headless, true)
  assert.deepEqual(headless.clusterIPs, [])
  const ext = buildServiceInfo(svc('ext', { type: 'ExternalName', externalName: 'example.org', clusterIP: undefined }))
  assert.equal(ext.externalName, 'example.org')
  assert.deepEqual(ext.clusterIPs, [])
  const sticky = buildServiceInfo(svc('s', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }))
  assert.equal(sticky.sessionAffinity, 'ClientIP')
  assert.equal(sticky.affinityTimeoutSeconds, 60)
})

test('endpoints: one per address, ready defaults to true, pod names, FQDN skipped, duplicates merged', () => {
  const eps = buildEndpoints([
    slice('a', 'web', [
      { addresses: ['10.0.0.1'], nodeName: 'n1', targetRef: { kind: 'Pod', name: 'web-1' } },
      { addresses: ['10.0.0.2'], conditions: { ready: false, serving: true, terminating: true }, hostname: 'web-2' },
      { addresses: ['10.0.0.3', 'fd00::3'] }
    ]),
    slice('b', 'web', [{ addresses: ['10.0.0.1'], nodeName: 'n1', targetRef: { kind: 'Pod', name: 'web-1' } }]),
    { ...slice('c', 'web', [{ addresses: ['db.example.org'] }]), addressType: 'FQDN' }
  ])
  assert.deepEqual(eps.map(e => [e.ip, e.ready, e.serving, e.terminating]), [
    ['10.0.0.1', true, true, false],
    ['10.0.0.2', false, true, true],
    ['10.0.0.3', true, true, false],
    ['fd00::3', true, true, false]
  ])
  assert.equal(eps[0]?.podName, 'web-1')
  assert.equal(eps[0]?.nodeName, 'n1')
  assert.equal(eps[1]?.hostname, 'web-2')
  assert.deepEqual(eps[0]?.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }])
})

test('core/v1 Endpoints convert to the same model (old metaServers)', () => {
  const s = endpointsToSlice({
    metadata: { name: 'web', namespace: 'default' },
    subsets: [{ addresses: [{ ip: '10.0.0.1', nodeName: 'n1', targetRef: { kind: 'Pod', name: 'web-1' } }], notReadyAddresses: [{ ip: '10.0.0.9' }], ports: [{ name: 'http', port: 8080 }] }]
  })
  assert.equal(s.metadata.labels?.['kubernetes.io/service-name'], 'web')
  const eps = buildEndpoints([s])
  assert.deepEqual(eps.map(e => [e.ip, e.ready, e.nodeName, e.podName]), [['10.0.0.1', true, 'n1', 'web-1'], ['10.0.0.9', false, undefined, undefined]])
})

test('compact forms keep identity and the model, drop the raw object, and share arrays', () => {
  const fat = { ...svc('web'), metadata: { name: 'web', namespace: 'default', resourceVersion: '7', managedFields: [{ big: 'x'.repeat(1000) }], annotations: { a: 'b' } } } as never
  const c = compactService(fat)
  assert.equal(JSON.stringify(c).includes('managedFields'), false)
  assert.deepEqual(c.metadata, { name: 'web', namespace: 'default', resourceVersion: '7' })
  assert.deepEqual(c.info, buildServiceInfo(fat))
  const a = compactSlice(slice('a', 'web', [{ addresses: ['10.0.0.1'], targetRef: { kind: 'Pod', name: 'p', uid: 'u', namespace: 'default' } }]))
  assert.equal(a.serviceKey, 'default/web')
  assert.deepEqual(a.endpoints, buildEndpoints([slice('a', 'web', [{ addresses: ['10.0.0.1'], targetRef: { kind: 'Pod', name: 'p' } }])]))
  assert.equal(mergeEndpoints([a]), a.endpoints, 'one slice: its array is shared, not copied')
  const b = compactSlice(slice('b', 'web', [{ addresses: ['10.0.0.1'], targetRef: { kind: 'Pod', name: 'p' } }, { addresses: ['10.0.0.2'] }]))
  assert.deepEqual(mergeEndpoints([b, a]).map(e => e.ip), ['10.0.0.1', '10.0.0.2'], 'merged in slice-name order, duplicates dropped')
})

test('service proxy filter follows upstream label semantics', () => {
  const labelled = { service: buildServiceInfo(svc('a', {}, { 'service.edgemesh.kubeedge.io/service-proxy-name': 'other' })), endpoints: [] }
  const plain = { service: buildServiceInfo(svc('b')), endpoints: [] }
  const exists = serviceProxyFilter('FilterIfLabelExists')
  const notExists = serviceProxyFilter('FilterIfLabelDoesNotExists')
  assert.deepEqual([exists(labelled), exists(plain)], [false, true])
  assert.deepEqual([notExists(labelled), notExists(plain)], [true, false])
})
