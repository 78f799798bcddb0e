import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createStandaloneInformers } from '../../../src/servicemap/standalone.ts'
import { ServiceMap } from '../../../src/servicemap/service-map.ts'
import { StandaloneFileError } from '../../../src/servicemap/errors.ts'
import { noopLogger } from '../../../src/observability/logger.ts'

const fixture = new URL('../../fixtures/standalone/services.yaml', import.meta.url).pathname

async function until (what: string, check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

test('the demo fixture loads into a service map', async () => {
  const { services, endpointSlices } = createStandaloneInformers(fixture, noopLogger)
  const map = new ServiceMap({ logger: noopLogger, services, endpointSlices }, { serviceFilterMode: 'FilterIfLabelExists' })
  await map.start()
  const web = map.get('default/hostname-svc')
  assert.equal(web?.service.clusterIPs[0], '10.96.0.100')
  assert.deepEqual(web?.service.ports.map(p => [p.name, p.port, p.targetPort]), [['http-0', 12345, 9376]])
  assert.deepEqual(web?.endpoints.map(e => e.nodeName), ['ke-edge1', 'ke-edge2', 'ke-edge3'])
  assert.equal(map.get('default/hostname-headless')?.service.headless, true)
  await map.stop()
})

test('file edits become events; a broken file keeps the last good state', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-standalone-'))
  try {
    const file = join(dir, 'services.yaml')
    const doc = (ip: string): string => [
      'apiVersion: v1', 'kind: Service', 'metadata: {name: web}', 'spec: {clusterIP: 10.96.0.5, ports: [{port: 80}]}', '---',
      'apiVersion: discovery.k8s.io/v1', 'kind: EndpointSlice',
      'metadata: {name: web-a, labels: {kubernetes.io/service-name: web}}', 'addressType: IPv4',
      `endpoints: [{addresses: ["${ip}"]}]`, 'ports: [{port: 8080}]', ''
    ].join('\n')
    await writeFile(file, doc('10.0.0.1'))
    const { services, endpointSlices } = createStandaloneInformers(file, noopLogger)
    const map = new ServiceMap({ logger: noopLogger, services, endpointSlices }, { serviceFilterMode: 'FilterIfLabelExists' })
    await map.start()
    assert.equal(map.get('default/web')?.endpoints[0]?.ip, '10.0.0.1')

    await writeFile(file, doc('10.0.0.2'))
    await until('the edit', () => map.get('default/web')?.endpoints[0]?.ip === '10.0.0.2')

    // Replaced by rename, as editors and ConfigMap volumes do.
    await writeFile(join(dir, 'tmp.yaml'), doc('10.0.0.3'))
    await rename(join(dir, 'tmp.yaml'), file)
    await until('the rename', () => map.get('default/web')?.endpoints[0]?.ip === '10.0.0.3')

    await writeFile(file, 'kind: Service\nmetadata: {name: [broken\n')
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.equal(map.get('default/web')?.endpoints[0]?.ip, '10.0.0.3', 'last good state kept')

    await writeFile(file, doc('10.0.0.1').split('---')[0] as string)
    await until('the slice removal', () => map.get('default/web')?.endpoints.length === 0)
    await map.stop()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a missing or invalid file fails start with the file named', async () => {
  const { services } = createStandaloneInformers('/nonexistent/services.yaml', noopLogger)
  await assert.rejects(services.start(), (err: unknown) => err instanceof StandaloneFileError && /\/nonexistent\/services\.yaml cannot be read \(ENOENT\)/.test(err.message))
})
