import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Lab, seed, workload } from '../../lab/index.ts'
import { probe, rootOnly } from './helpers.ts'

const tinyDns = fileURLToPath(new URL('./fixtures/tiny-dns.ts', import.meta.url))
const ECHO = 7007

describe('seed topology', rootOnly, () => {
  let lab: Lab
  const edge = ['edge-a1', 'edge-a2', 'edge-b1']
  const cloud = ['k8s-master', 'k8s-node1']

  before(async () => {
    lab = await Lab.up(seed, { id: Lab.newId() })
    const procs = [
      ...cloud.map(n => lab.spawn(n, workload('hostname'))),
      ...cloud.map(n => lab.spawn(n, workload('echo', 'udp', '--port', '3478', '--reflect'))),
      ...[...cloud, ...edge].map(n => lab.spawn(n, workload('echo', 'tcp', '--port', String(ECHO))))
    ]
    await Promise.all(procs.map(p => p.waitForOutput('listening')))
  })

  after(async () => {
    await lab?.down()
  })

  test('every node reaches both cloud public addresses (curl to the hostname backend)', async () => {
    const checks = [...cloud, ...edge].flatMap(from => cloud.map(async to => {
      const r = await lab.exec(from, ['curl', '-sS', '--max-time', '5', `http://${lab.address(to)}:9376/`])
      assert.equal(r.code, 0, `curl ${from} -> ${to}: ${r.stderr}`)
      assert.equal(r.stdout, to, `${from} -> ${to}`)
    }))
    await Promise.all(checks)
  })

  test('edge nodes reach same-site private addresses', async () => {
    const [r] = await probe(lab, 'edge-a1', 'tcp', [`${lab.address('edge-a2')}:${ECHO}`])
    assert.equal(r?.ok, true, JSON.stringify(r))
    assert.equal(r?.reply, 'ping')
  })

  test('private addresses are unreachable across sites and from the cloud', async () => {
    const a = edge.filter(n => lab.member(n).site === 'edge-a')
    const pairs: Array<[string, string]> = [
      ...a.map((n): [string, string] => [n, 'edge-b1']),
      ...a.map((n): [string, string] => ['edge-b1', n]),
      ...cloud.flatMap(c => edge.map((n): [string, string] => [c, n]))
    ]
    const results = await Promise.all(pairs.map(async ([from, to]) => {
      const [r] = await probe(lab, from, 'tcp', [`${lab.address(to)}:${ECHO}`], ['--timeout', '1500'])
      return { from, to, r }
    }))
    for (const { from, to, r } of results) assert.equal(r?.ok, false, `${from} reached ${to}'s private address: ${JSON.stringify(r)}`)
  })

  test('NAT routers drop unsolicited inbound traffic', async () => {
    const [r] = await probe(lab, 'k8s-master', 'tcp', [`${lab.address('nat-a')}:${ECHO}`], ['--timeout', '1000'])
    assert.equal(r?.ok, false)
    assert.equal(r?.error, 'timeout', 'dropped, not refused')
  })

  test('site A keeps one mapping (masquerade), site B maps per destination (fully-random)', async () => {
    const targets = cloud.map(n => `${lab.address(n)}:3478`)
    const a = await probe(lab, 'edge-a1', 'udp', targets, ['--local-port', '40000'])
    assert.deepEqual(a.map(r => r.reply), [`${lab.publicAddress('edge-a1')}:40000`, `${lab.publicAddress('edge-a1')}:40000`])
    const b = await probe(lab, 'edge-b1', 'udp', targets, ['--local-port', '40000'])
    assert.ok(b.every(r => r.ok && r.reply?.startsWith(`${lab.publicAddress('edge-b1')}:`)), JSON.stringify(b))
    assert.notEqual(b[0]?.reply, b[1]?.reply, 'fully-random should map each destination to its own port')
  })

  test('pods resolve through 169.254.96.16 with the pod resolv.conf', async () => {
    const node = 'edge-a1'
    const pod = await lab.exec(node, ['cat', '/etc/resolv.conf'], { pod: 'client' })
    assert.match(pod.stdout, /^nameserver 169\.254\.96\.16$/m)
    assert.match(pod.stdout, /^search default\.svc\.cluster\.local svc\.cluster\.local cluster\.local$/m)
    assert.match(pod.stdout, /^options ndots:5$/m)
    const host = await lab.exec(node, ['cat', '/etc/resolv.conf'])
    assert.equal(host.stdout, readFileSync('/etc/resolv.conf', 'utf8'), 'agents keep the node resolv.conf')

    const before = await lab.exec(node, ['ip', 'route', 'get', '169.254.96.16'])
    assert.notEqual(before.code, 0, 'no route out before the agent binds the address')

    // What the agent does: bind the address on a bridge, serve DNS on it.
    for (const argv of [
      ['ip', 'link', 'add', 'edgemesh0', 'type', 'bridge'],
      ['ip', 'addr', 'add', '169.254.96.16/32', 'dev', 'edgemesh0'],
      ['ip', 'link', 'set', 'edgemesh0', 'up']
    ]) {
      const r = await lab.exec(node, argv)
      assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`)
    }
    const dns = lab.spawn(node, [process.execPath, tinyDns])
    await dns.waitForOutput('listening')

    const dig = await lab.exec(node, ['dig', '+search', '+short', '+time=2', '+tries=1', 'hostname-svc'], { pod: 'client' })
    assert.equal(dig.stdout.trim(), '10.96.0.10', dig.stderr)
    const ns = await lab.exec(node, ['nslookup', 'hostname-svc'], { pod: 'client' })
    assert.match(ns.stdout, /hostname-svc\.default\.svc\.cluster\.local/)
    assert.match(ns.stdout, /Address: 10\.96\.0\.10/)
    await dns.stop()
  })

  test('pods get POD_NAME and NODE_NAME; logs are per node; stop() ends them', async () => {
    const server = lab.spawn('edge-a2', workload('hostname'), { pod: 'hostname-x1' })
    await server.waitForOutput('listening')
    assert.ok(server.logPath.startsWith(`${lab.logDir}/edge-a2/`), server.logPath)
    const r = await lab.exec('edge-a1', ['curl', '-sS', '--max-time', '5', `http://${lab.address('edge-a2')}:9376/`], { pod: 'client' })
    assert.equal(r.stdout, 'hostname-x1', r.stderr)
    const env = await lab.exec('edge-b1', ['sh', '-c', 'echo "$NODE_NAME/$POD_NAME"'], { pod: 'p1' })
    assert.equal(env.stdout.trim(), 'edge-b1/p1')
    const exit = await server.stop()
    assert.equal(server.running, false)
    assert.equal(exit.code, 0)
  })

  test('down removes namespaces, /etc/netns entries and the state file', async () => {
    const prefix = `eml-${lab.id}-`
    await lab.down()
    assert.deepEqual(names('/run/netns').filter(n => n.startsWith(prefix)), [])
    assert.deepEqual(names('/etc/netns').filter(n => n.startsWith(prefix)), [])
    assert.equal(existsSync(`/run/edgemesh-lab/${lab.id}.json`), false)
    assert.equal(existsSync(lab.logDir), false)
  })
})

function names (dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : []
}
