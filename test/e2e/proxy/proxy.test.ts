// EdgeProxy in the lab: the agent (DNS + proxy, standalone services file,
// nftables interception) on edge-a1; `hostname` backends on edge-a1 and
// edge-a2; clients are pods on edge-a1 using ClusterIPs and service names.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Lab, seed, workload } from '../../lab/index.ts'
import type { LabProcess } from '../../lab/index.ts'
import { rootOnly, waitFor } from '../lab/helpers.ts'
import { SERVICES } from './fixtures/services.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const entry = join(root, 'src/bin/edgemesh.ts')
const client = fileURLToPath(new URL('./fixtures/client.ts', import.meta.url))
const NODE = 'edge-a1'

const HASH_BY_HEADER = `---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: hostname-svc, namespace: default}
spec:
  host: hostname-svc
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
`

describe('EdgeProxy in the seed lab', rootOnly, () => {
  let lab: Lab
  let dir: string
  let config: string
  let services: string
  let agent: LabProcess

  async function startAgent (name: string): Promise<LabProcess> {
    const p = lab.spawn(NODE, [process.execPath, entry, 'agent', '--config-file', config], { env: { NAMESPACE: 'kubeedge' }, name })
    try {
      await p.waitForOutput('"msg":"proxy rules installed"', 20_000)
    } catch (err) {
      throw new Error(`agent did not install proxy rules: ${(err as Error).message}\n${await p.output()}`)
    }
    return p
  }

  async function curl (url: string, headers: string[] = []): Promise<string> {
    const r = await lab.exec(NODE, ['curl', '-sS', '--max-time', '3', ...headers.flatMap(h => ['-H', h]), url], { pod: 'client' })
    assert.equal(r.code, 0, `curl ${url}: ${r.stderr}`)
    return r.stdout
  }

  async function writeServices (text: string): Promise<void> {
    // Replace by rename, as a ConfigMap update does.
    await writeFile(services + '.tmp', text)
    await rename(services + '.tmp', services)
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-proxy-e2e-'))
    services = join(dir, 'services.yaml')
    await writeServices(SERVICES)
    config = join(dir, 'edgemesh-agent.yaml')
    await writeFile(config, [
      'kubeAPIConfig:',
      `  standaloneFile: ${services}`,
      'commonConfig:',
      `  stateDir: ${dir}`,
      'modules:',
      '  edgeDNS: {enable: true}',
      '  edgeProxy: {enable: true}',
      '  edgeTunnel: {enable: false}',
      ''
    ].join('\n'))
    lab = await Lab.up(seed, { id: Lab.newId() })
    for (const node of ['edge-a1', 'edge-a2']) {
      const p = lab.spawn(node, workload('hostname', '--name', node))
      await p.waitForOutput('listening', 10_000)
    }
    const echo = lab.spawn('edge-a2', workload('echo', 'udp', '--port', '7007'))
    await echo.waitForOutput('listening', 10_000)
    // kube-proxy-style rules in another table, at kube-proxy's priority, sending the same ClusterIP to a black hole.
    const kubeProxy = await lab.exec(NODE, ['nft', '-f', '-'], {
      input: [
        'table ip kube-proxy-like {',
        '  chain prerouting { type nat hook prerouting priority dstnat; ip daddr 10.96.0.10 tcp dport 12345 dnat to 192.168.1.99:9376; }',
        '  chain output { type nat hook output priority -100; ip daddr 10.96.0.10 tcp dport 12345 dnat to 192.168.1.99:9376; }',
        '}', ''
      ].join('\n')
    })
    assert.equal(kubeProxy.code, 0, kubeProxy.stderr)
    agent = await startAgent('agent-1')
  })

  after(async () => {
    await lab?.down()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('curl http://hostname-svc:12345 from a pod reaches both backends (kernel path, despite kube-proxy-like rules)', async () => {
    const table = await lab.exec(NODE, ['nft', 'list', 'table', 'ip', 'edgemesh'])
    assert.match(table.stdout, /10\.96\.0\.10 \. tcp \. 12345 : goto svc-/, 'hostname-svc is on the kernel path')
    const names = new Set<string>()
    for (let i = 0; i < 6; i++) names.add(await curl('http://hostname-svc:12345'))
    assert.deepEqual([...names].sort(), ['edge-a1', 'edge-a2'])
  })

  test('a WebSocket upgrade passes through', async () => {
    const r = await lab.exec(NODE, [process.execPath, client, 'ws', 'ws://hostname-svc.default.svc.cluster.local:12345/', 'hi'], { pod: 'client' })
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(JSON.parse(r.stdout).reply as string, /^edge-a[12]: hi$/)
  })

  test('UDP echo through a ClusterIP keeps datagram boundaries', async () => {
    const sizes = [1, 1400, 33, 8000, 512]
    const r = await lab.exec(NODE, [process.execPath, client, 'udp', '10.96.0.20:7', ...sizes.map(String)], { pod: 'client' })
    const result = JSON.parse(r.stdout) as { sizes: number[], complete: boolean }
    assert.ok(result.complete, r.stdout)
    assert.deepEqual([...result.sizes].sort((a, b) => a - b), [...sizes].sort((a, b) => a - b))
  })

  test('switching to consistentHash by header changes the distribution; an open connection keeps working', async () => {
    const held = lab.spawn(NODE, [process.execPath, client, 'ws-hold', 'ws://10.96.0.10:12345/'], { pod: 'held', name: 'ws-held' })
    await held.waitForOutput('"open":true', 5000)
    await writeServices(SERVICES + HASH_BY_HEADER)
    // Header-based hashing needs the request: the service moves to the userspace path.
    await waitFor('hostname-svc on the userspace path', async () => {
      const t = await lab.exec(NODE, ['nft', 'list', 'map', 'ip', 'edgemesh', 'userspace'])
      return /10\.96\.0\.10 \. tcp \. 12345 :/.test(t.stdout)
    }, 10_000)
    const byUser = new Map<string, Set<string>>()
    for (const user of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi']) {
      const seen = new Set<string>()
      for (let i = 0; i < 3; i++) seen.add(await curl('http://hostname-svc:12345', [`x-user: ${user}`]))
      byUser.set(user, seen)
    }
    for (const [user, seen] of byUser) assert.equal(seen.size, 1, `${user} sticks to one backend, saw ${[...seen].join(',')}`)
    assert.equal(new Set([...byUser.values()].flatMap(s => [...s])).size, 2, 'users spread over both backends')
    // The connection opened before the switch is still answered.
    const before = (await held.output()).split('\n').filter(l => l.includes('"reply"')).length
    await waitFor('held connection still answered', async () => (await held.output()).split('\n').filter(l => l.includes('"reply"')).length >= before + 3, 5000)
    assert.doesNotMatch(await held.output(), /"closed":true/)
    await held.stop()
    await writeServices(SERVICES)
    await waitFor('back on the kernel path', async () => {
      const t = await lab.exec(NODE, ['nft', 'list', 'map', 'ip', 'edgemesh', 'kernel'])
      return /10\.96\.0\.10 \. tcp \. 12345 :/.test(t.stdout)
    }, 10_000)
  })

  test('with the agent stopped the kernel path keeps serving; a restart reconciles without a rebuild', async () => {
    const handlesBefore = (await lab.exec(NODE, ['nft', '-a', 'list', 'chain', 'ip', 'edgemesh', 'services'])).stdout
    await agent.stop()
    assert.match(await curl('http://10.96.0.10:12345'), /^edge-a[12]$/)
    agent = await startAgent('agent-2')
    const handlesAfter = (await lab.exec(NODE, ['nft', '-a', 'list', 'chain', 'ip', 'edgemesh', 'services'])).stdout
    // Same base rules (same handles): the table was reconciled, not deleted and recreated.
    assert.equal(handlesAfter.match(/# handle \d+/g)?.join(), handlesBefore.match(/# handle \d+/g)?.join())
    assert.match(await curl('http://hostname-svc:12345'), /^edge-a[12]$/)
  })

  test('the status server answers probes and scrapes', async () => {
    const ready = await lab.exec(NODE, ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:10551/readyz'])
    assert.equal(ready.stdout, 'ok\n', ready.stderr)
    const metrics = await lab.exec(NODE, ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:10551/metrics'])
    assert.match(metrics.stdout, /^edgemesh_proxy_rules\{path="kernel"\} [1-9]/m)
    assert.match(metrics.stdout, /^edgemesh_dns_queries_total/m)
    const status = JSON.parse((await lab.exec(NODE, ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:10551/status'])).stdout) as { ready: boolean, proxy: { kernel: number }, services: { count: number } }
    assert.equal(status.ready, true)
    assert.equal(status.services.count, 2)
    assert.ok(status.proxy.kernel >= 2)
  })

  test('edgemesh cleanup removes the rules and the interface', async () => {
    await agent.stop()
    const r = await lab.exec(NODE, [process.execPath, entry, 'cleanup', '--config-file', config])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /^removed nftables table ip edgemesh$/m)
    assert.match(r.stdout, /^removed interface edgemesh0$/m)
    const tables = await lab.exec(NODE, ['nft', 'list', 'tables'])
    assert.doesNotMatch(tables.stdout, /table ip edgemesh\b/)
    assert.match(tables.stdout, /kube-proxy-like/, 'other tables are left alone')
    const link = await lab.exec(NODE, ['ip', 'link', 'show', 'edgemesh0'])
    assert.notEqual(link.code, 0)
    // Now kube-proxy's (black-hole) rule decides: the service no longer answers through us.
    const curl = await lab.exec(NODE, ['curl', '-sS', '--max-time', '1', 'http://10.96.0.10:12345'])
    assert.notEqual(curl.code, 0)
    const again = await lab.exec(NODE, [process.execPath, entry, 'cleanup'])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, /^no nftables table ip edgemesh: nothing to remove$/m)
    assert.match(again.stdout, /^no interface edgemesh0: nothing to remove$/m)
    assert.doesNotMatch(again.stdout, /removed/)
  })
})
