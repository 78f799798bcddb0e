// Quick memory probe for the service map at scale without a real control
// plane: a fake list/watch server in this process, the probe in a child.
//   node bench/servicemap/memory.ts [--services 10000] [-- node flags for the probe]
import { spawn } from 'node:child_process'
import { bundleForBench } from '../bundle.ts'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FakeApiServer } from '../../test/helpers/fake-apiserver.ts'

const services = Number(process.argv[2] ?? 10000)
const flags = process.argv.slice(3)
const api = await new FakeApiServer().listen()
for (let i = 0; i < services; i++) {
  api.put('/api/v1/services', { metadata: { name: `svc-${i}`, namespace: 'bench', uid: `uid-${i}`, managedFields: [{ manager: 'kubectl', operation: 'Update' }] }, spec: { clusterIP: `10.96.${i >> 8}.${i & 255}`, clusterIPs: [`10.96.${i >> 8}.${i & 255}`], ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }], type: 'ClusterIP', sessionAffinity: 'None' } } as never)
  api.put('/apis/discovery.k8s.io/v1/endpointslices', {
    metadata: { name: `svc-${i}-abcde`, namespace: 'bench', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: 5 }, (_, e) => ({ addresses: [`10.${(i >> 8) & 255}.${i & 255}.${e + 1}`], conditions: { ready: true, serving: true, terminating: false }, nodeName: `edge-${e}`, targetRef: { kind: 'Pod', namespace: 'bench', name: `svc-${i}-pod-${e}`, uid: `pod-uid-${i}-${e}` } }))
  } as never)
}
const dir = mkdtempSync(join(tmpdir(), 'em-mem-'))
const kubeconfig = join(dir, 'kubeconfig')
writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: c, cluster: {server: "${api.url}"}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n`)
const probe = spawn(process.execPath, [...flags, await bundleForBench(new URL('./probe.ts', import.meta.url).pathname)], { env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ['ignore', 'pipe', 'inherit'] })
probe.stdout.setEncoding('utf8').on('data', (c: string) => {
  process.stdout.write(c)
  if (c.includes('"rss"')) probe.kill('SIGTERM')
})
await new Promise(resolve => probe.on('exit', resolve))
await api.close()
