// The edge gateway in the seed lab, as the seed deploys it: relays on both
// cloud nodes, `edgemesh gateway` on k8s-node1 (node k8s-node1-gateway, tunnel
// on 20007 as a client), a client on the public network. Service `lan` has its
// endpoint on k8s-master (the gateway's LAN); service `edge` only on edge-b1,
// behind the symmetric NAT, reached through a relay. Routes come from upstream's
// hostname-lb-random-gateway-route.yaml (adapted in addresses: the endpoints),
// then the same routes as a Gateway API Gateway and HTTPRoute on port 23380.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'
import { Lab, seed, workload } from '../../lab/index.ts'
import type { LabProcess } from '../../lab/index.ts'
import { rootOnly, waitFor } from '../lab/helpers.ts'
import { serviceYaml } from '../../helpers/services.ts'
import { CONTROLLER_NAME } from '../../../src/gateway/index.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const entry = join(root, 'src/bin/edgemesh.ts')
const PSK = 'edgemesh-ts-test-psk-not-for-any-real-cluster'
const RELAYS = ['    relayNodes:', '    - {nodeName: k8s-master, advertiseAddress: [203.0.113.10]}', '    - {nodeName: k8s-node1, advertiseAddress: [203.0.113.11]}']

describe('edge gateway in the seed lab', rootOnly, () => {
  let lab: Lab
  let dir: string
  let gateway: LabProcess

  async function start (node: string, kind: 'agent' | 'gateway', lines: string[]): Promise<LabProcess> {
    const file = join(dir, `${node}-${kind}.yaml`)
    await writeFile(file, [
      'kubeAPIConfig:', `  standaloneFile: ${join(dir, 'world.yaml')}`,
      ...lines,
      '  edgeTunnel:', '    enable: true', '    heartbeatPeriod: 2', `    psk: {path: ${join(dir, 'psk')}}`, ...RELAYS, ''
    ].join('\n'))
    const p = lab.spawn(node, [process.execPath, entry, kind, '--config-file', file], { env: { NAMESPACE: 'kubeedge' }, name: kind })
    try {
      await p.waitForOutput('"msg":"running"', 20_000)
    } catch (err) {
      throw new Error(`${kind} on ${node} did not start: ${(err as Error).message}\n${(await p.output()).slice(-4000)}`)
    }
    return p
  }

  async function curl (from: string, args: string[]): Promise<{ code: number, out: string, err: string }> {
    const r = await lab.exec(from, ['curl', '-sS', '--max-time', '8', ...args])
    return { code: r.code ?? -1, out: r.stdout, err: r.stderr }
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-gateway-lab-'))
    await writeFile(join(dir, 'psk'), PSK)
    // Upstream's route example, verbatim but for its Service (ours point at the lab's nodes) and Deployment (no controller here).
    const example = parseAllDocuments(await readFile(new URL('./fixtures/hostname-lb-random-gateway-route.yaml', import.meta.url), 'utf8')).map(d => d.toJS() as { kind: string })
    const routes = example.filter(o => ['Gateway', 'VirtualService', 'DestinationRule'].includes(o.kind))
    const vs = routes.find(o => o.kind === 'VirtualService') as unknown as { spec: { http: Array<Record<string, unknown>> } }
    // A second route on the same keep-alive connection: /lan to the service on the gateway's LAN.
    vs.spec.http.unshift({ match: [{ uri: { prefix: '/lan' } }], route: [{ destination: { host: 'lan', port: { number: 80 } } }] })
    await writeFile(join(dir, 'world.yaml'), [
      serviceYaml({ name: 'hostname-lb-svc', clusterIP: '10.96.0.10', ports: [{ name: 'http-0', port: 12345, targetPort: 9376 }], endpoints: [{ ip: '192.168.1.21', nodeName: 'edge-b1' }] }),
      serviceYaml({ name: 'lan', clusterIP: '10.96.0.11', ports: [{ name: 'http', port: 80, targetPort: 9376 }], endpoints: [{ ip: '203.0.113.10', nodeName: 'k8s-master' }] }),
      routes.map(o => JSON.stringify(o)).join('\n---\n'), '\n---\n',
      [...gatewayApiRoutes()].map(o => JSON.stringify(o)).join('\n---\n'), ''
    ].join(''))
    lab = await Lab.up(seed, { id: Lab.newId() })
    for (const node of ['edge-b1', 'k8s-master']) await lab.spawn(node, workload('hostname', '--name', node)).waitForOutput('listening', 10_000)
    await Promise.all(['k8s-master', 'k8s-node1'].map(async n => await start(n, 'agent', ['modules:', '  edgeDNS: {enable: false}', '  edgeProxy: {enable: false}'])))
    const edge = await start('edge-b1', 'agent', ['modules:', '  edgeDNS: {enable: false}', '  edgeProxy: {enable: false}'])
    await waitFor('edge-b1 holds reservations on both relays', async () => {
      const r = await lab.exec('edge-b1', ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:10551/status'])
      const a = r.stdout === '' ? [] : (JSON.parse(r.stdout) as { tunnel: { addresses: string[] } }).tunnel.addresses
      return a.filter(x => x.includes('p2p-circuit')).length >= 2
    }, 20_000)
    assert.ok(edge.running)
    gateway = await start('k8s-node1', 'gateway', ['modules:', '  edgeGateway: {enable: true, nic: eth0}'])
  })

  after(async () => {
    await lab?.down()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('the gateway listens on eth0\'s address only, as node k8s-node1-gateway on 20007', async () => {
    const r = await lab.exec('k8s-node1', ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:10552/status'])
    const status = JSON.parse(r.stdout) as { gateway: { listeners: Array<{ port: number, addresses: string[] }> }, tunnel: { addresses: string[] } }
    assert.deepEqual(status.gateway.listeners.map(l => [l.port, l.addresses]).sort(), [[23333, ['203.0.113.11']], [23380, ['203.0.113.11']]])
    assert.ok(status.tunnel.addresses.some(a => a.includes('/tcp/20007/')), JSON.stringify(status.tunnel.addresses))
    assert.match(await gateway.output(), /"node":"k8s-node1-gateway"/)
  })

  test('a public client reaches the service behind the symmetric NAT (through a relay) and the LAN service, on one keep-alive connection', async () => {
    const r = await curl('k8s-master', ['-v', '-H', 'Host: hostname.org', 'http://203.0.113.11:23333/who', 'http://203.0.113.11:23333/lan'])
    assert.equal(r.code, 0, r.err)
    assert.match(r.err, /Re-using existing connection/)
    assert.equal(r.out, 'edge-b1k8s-master', 'the hostname backends answer their node names')
    const other = await curl('k8s-master', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: example.com', 'http://203.0.113.11:23333/who'])
    assert.equal(other.out, '404', 'the route admits hostname.org only')
    const st = await lab.exec('k8s-node1', ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:10552/status'])
    const peers = (JSON.parse(st.stdout) as { tunnel: { peers: Array<{ nodeName?: string, dataPath?: string }> } }).tunnel.peers
    assert.ok(peers.some(p => p.nodeName === 'edge-b1' && p.dataPath === 'relay'), `edge-b1 through a relay: ${JSON.stringify(peers)}`)
  })

  test('the same routes as a Gateway API HTTPRoute: the relayed and the LAN service on one keep-alive connection', async () => {
    const r = await curl('k8s-master', ['-v', '-H', 'Host: hostname.org', 'http://203.0.113.11:23380/who', 'http://203.0.113.11:23380/lan'])
    assert.equal(r.code, 0, r.err)
    assert.match(r.err, /Re-using existing connection/)
    assert.equal(r.out, 'edge-b1k8s-master')
    const other = await curl('k8s-master', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: example.com', 'http://203.0.113.11:23380/who'])
    assert.equal(other.out, '404', 'the HTTPRoute admits hostname.org only')
  })
})

/** Upstream's route example as the Gateway API says it: a Gateway of class edgemesh and one HTTPRoute. */
function gatewayApiRoutes (): object[] {
  const api = 'gateway.networking.k8s.io/v1'
  const rule = (prefix: string, name: string, port: number): object => ({ matches: [{ path: { type: 'PathPrefix', value: prefix } }], backendRefs: [{ name, port }] })
  return [
    { apiVersion: api, kind: 'GatewayClass', metadata: { name: 'edgemesh' }, spec: { controllerName: CONTROLLER_NAME } },
    { apiVersion: api, kind: 'Gateway', metadata: { name: 'edgemesh-gw', namespace: 'default' }, spec: { gatewayClassName: 'edgemesh', listeners: [{ name: 'http', port: 23380, protocol: 'HTTP' }] } },
    { apiVersion: api, kind: 'HTTPRoute', metadata: { name: 'hostname-lb', namespace: 'default' }, spec: { parentRefs: [{ name: 'edgemesh-gw' }], hostnames: ['hostname.org'], rules: [rule('/who', 'hostname-lb-svc', 12345), rule('/lan', 'lan', 80)] } }
  ]
}
