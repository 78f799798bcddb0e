// The offline bundle's install.sh, run as an operator would: built with
// `scripts/bundle.ts`, unpacked, driven with real kubectl and Helm against a
// real kube-apiserver whose DaemonSet controller rolls the agents out.
//
// Fake, because they cannot run here: the scheduler and the kubelet. A loop
// binds the pods the DaemonSet controller creates to the node their affinity
// names and marks them running and ready (and can be paused to make a
// rollout hang). No container runtime exists either, so install.sh
// takes its "no runtime: import on each node" path.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { haveControlPlaneTools, startControlPlane, toolsBin } from '../../helpers/control-plane.ts'
import type { ControlPlane, ObjectRef } from '../../helpers/control-plane.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const bin = toolsBin()
const ready = haveControlPlaneTools() && ['helm', 'kubectl', 'kube-controller-manager'].every(b => existsSync(join(bin, b))) && process.getuid?.() === 0
const skip = ready ? {} : { skip: 'needs root (image build), helm, kubectl, kube-controller-manager (scripts/tools/build-kube.sh)' }

interface Run { code: number, stdout: string, stderr: string }

function run (cmd: string, args: string[], env: Record<string, string>, cwd?: string): Promise<Run> {
  return new Promise(resolve => {
    execFile(cmd, args, { env: { ...process.env, ...env }, cwd, maxBuffer: 64 << 20, timeout: 240_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

/** A PATH with every system command except `hidden` (symlinks in a folder under `dir`): a host without them. */
function pathWithout (hidden: string[], dir: string): string {
  const shadow = join(dir, 'path-without-' + hidden.join('-'))
  if (existsSync(shadow)) return shadow
  mkdirSync(shadow)
  for (const from of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (!existsSync(from)) continue
    for (const name of readdirSync(from)) {
      if (hidden.includes(name) || existsSync(join(shadow, name))) continue
      symlinkSync(join(from, name), join(shadow, name))
    }
  }
  return shadow
}

describe('offline bundle: install.sh against a real API server', skip, () => {
  let cp: ControlPlane
  let dir: string
  let bundle: string
  let env: Record<string, string>
  let kubeletPaused = false
  let kubelet: NodeJS.Timeout | undefined
  let kubeletStopped = false

  const install = (args: string[], extraEnv: Record<string, string> = {}): Promise<Run> =>
    run('bash', [join(bundle, 'install.sh'), ...args], { ...env, ...extraEnv }, dir)
  const helm = (args: string[]): Promise<Run> => run(join(bin, 'helm'), args, env)
  const kubectl = (args: string[]): Promise<Run> => run(join(bin, 'kubectl'), args, env)

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgemesh-install-'))
    const built = await run(process.execPath, [join(root, 'scripts/bundle.ts'), '--out', dir, '--image-arch', process.arch === 'arm64' ? 'arm64' : 'amd64'], {})
    assert.equal(built.code, 0, built.stderr)
    const tarball = built.stdout.trim().split('\n').at(-1)?.split(' ')[0] as string
    assert.match(tarball, /edgemesh-offline-[\d.]+-(amd64|arm64)\.tar\.gz$/)
    assert.equal((await run('tar', ['-xzf', tarball, '-C', dir], {})).code, 0)
    bundle = tarball.replace(/\.tar\.gz$/, '')
    cp = await startControlPlane({ controllers: ['daemonset'] })
    env = { PATH: `${bin}:${process.env.PATH ?? ''}`, KUBECONFIG: cp.kubeconfigPath, HOME: dir }
    // A control-plane node with a public address, a cloud worker, an edge node.
    const nodes = [
      { name: 'k8s-master', labels: { 'node-role.kubernetes.io/control-plane': '' }, addresses: [{ type: 'InternalIP', address: '10.0.0.1' }, { type: 'ExternalIP', address: '152.136.201.36' }] },
      { name: 'k8s-node1', labels: {}, addresses: [{ type: 'InternalIP', address: '10.0.0.2' }] },
      { name: 'edge-1', labels: { 'node-role.kubernetes.io/edge': '' }, addresses: [{ type: 'InternalIP', address: '192.168.1.5' }] }
    ]
    for (const n of nodes) {
      await cp.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name, ...n.labels } } })
      const r = await cp.request('PATCH', `/api/v1/nodes/${n.name}/status`, { status: { addresses: n.addresses } }, 'application/merge-patch+json')
      assert.ok(r.status < 300, JSON.stringify(r.body))
    }
    // The fake kubelet: every scheduled pod becomes running and ready.
    const tick = async (): Promise<void> => {
      if (kubeletPaused) return
      const pods = await cp.request('GET', '/api/v1/pods')
      for (const p of pods.body?.items ?? []) {
        const isReady = (p.status?.conditions ?? []).some((c: { type: string, status: string }) => c.type === 'Ready' && c.status === 'True')
        if (isReady) continue
        if (p.spec?.nodeName === undefined) {
          // The scheduler's part: DaemonSet pods name their node in a required node affinity.
          const terms = p.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? []
          const node = terms.flatMap((t: { matchFields?: Array<{ key: string, values: string[] }> }) => t.matchFields ?? []).find((f: { key: string }) => f.key === 'metadata.name')?.values?.[0]
          if (node === undefined) continue
          await cp.request('POST', `/api/v1/namespaces/${p.metadata.namespace as string}/pods/${p.metadata.name as string}/binding`, {
            apiVersion: 'v1', kind: 'Binding', metadata: { name: p.metadata.name }, target: { apiVersion: 'v1', kind: 'Node', name: node }
          })
          continue
        }
        const now = new Date().toISOString()
        await cp.request('PATCH', `/api/v1/namespaces/${p.metadata.namespace as string}/pods/${p.metadata.name as string}/status`, {
          status: {
            phase: 'Running',
            startTime: now,
            conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }, { type: 'ContainersReady', status: 'True', lastTransitionTime: now }],
            containerStatuses: p.spec.containers.map((c: { name: string, image: string }) => ({ name: c.name, image: c.image, imageID: '', ready: true, started: true, restartCount: 0, state: { running: { startedAt: now } } }))
          }
        }, 'application/merge-patch+json')
      }
    }
    // after() stops it; a tick still running then must not schedule the next one (that kept the file's process alive).
    const loop = (): void => { if (!kubeletStopped) kubelet = setTimeout(() => { tick().catch(() => {}).finally(loop) }, 200) }
    loop()
  })

  after(async () => {
    kubeletStopped = true
    clearTimeout(kubelet)
    kubelet = undefined
    await cp?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('bad input fails before anything is installed, naming what is wrong', async () => {
    const noHelm = await install(['--yes'], { HELM: '/nonexistent/helm' })
    assert.notEqual(noHelm.code, 0)
    assert.match(noHelm.stderr, /helm not found/)
    const badKubeconfig = join(dir, 'unreachable.kubeconfig')
    writeFileSync(badKubeconfig, readFileSync(cp.kubeconfigPath, 'utf8').replace(cp.server, 'https://127.0.0.1:1'))
    const unreachable = await install(['--yes'], { KUBECONFIG: badKubeconfig })
    assert.notEqual(unreachable.code, 0)
    assert.match(unreachable.stderr, /cannot reach the cluster/)
    const shortPsk = await install(['--yes', '--psk', 'abc'])
    assert.notEqual(shortPsk.code, 0)
    assert.match(shortPsk.stderr, /PSK is too short/)
    for (const pub of ['<your-psk-string>', 'JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=']) {
      const published = await install(['--yes', '--psk', pub])
      assert.notEqual(published.code, 0, pub)
      assert.match(published.stderr, /published placeholder or upstream's default/)
    }
    const badRelay = await install(['--yes', '--relay', 'k8s-master'])
    assert.notEqual(badRelay.code, 0)
    assert.match(badRelay.stderr, /--relay 'k8s-master': expected NAME=ADDR/)
    const noTty = await install([])
    assert.notEqual(noTty.code, 0)
    assert.match(noTty.stderr, /pass --yes/)
    assert.ok(!existsSync(join(dir, 'edgemesh-psk.txt')), 'no PSK file written by failed runs')
    assert.equal((await helm(['list', '--all-namespaces', '-q'])).stdout.trim(), '')
  })

  test('--yes installs on a host with no Helm or kubectl: PSK generated and saved 0600, relays picked from cloud nodes, agents rolled out', async () => {
    const r = await install(['--yes'], { PATH: pathWithout(['helm', 'kubectl'], dir) })
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /k8s-master \(152\.136\.201\.36\)/)
    assert.match(r.stdout, /k8s-node1 \(10\.0\.0\.2\)/)
    assert.doesNotMatch(r.stdout, /edge-1 \(/)
    assert.match(r.stdout, /no container runtime CLI here|found [a-z ]+ but none answers here/)
    assert.match(r.stdout, /clusterDNS: \["169\.254\.96\.16"\]/)
    const pskFile = join(dir, 'edgemesh-psk.txt')
    assert.equal(statSync(pskFile).mode & 0o777, 0o600)
    const psk = readFileSync(pskFile, 'utf8').trim()
    assert.equal(Buffer.from(psk, 'base64').length, 32)
    const secret = await kubectl(['-n', 'kubeedge', 'get', 'secret', 'edgemesh-agent-psk', '-o', 'jsonpath={.data.psk}'])
    assert.equal(Buffer.from(secret.stdout, 'base64').toString(), psk)
    const cfg = await kubectl(['-n', 'kubeedge', 'get', 'configmap', 'edgemesh-agent-cfg', '-o', 'jsonpath={.data.edgemesh-agent\\.yaml}'])
    const agentYaml = parse(cfg.stdout) as { modules: { edgeTunnel: { relayNodes: Array<{ nodeName: string, advertiseAddress: string[] }> } } }
    assert.deepEqual(agentYaml.modules.edgeTunnel.relayNodes, [
      { nodeName: 'k8s-master', advertiseAddress: ['152.136.201.36'] },
      { nodeName: 'k8s-node1', advertiseAddress: ['10.0.0.2'] }
    ])
    const image = readFileSync(join(bundle, 'images/IMAGE'), 'utf8').trim()
    const ds = await kubectl(['-n', 'kubeedge', 'get', 'daemonset', 'edgemesh-agent', '-o', 'jsonpath={.spec.template.spec.containers[0].image} {.status.numberReady}'])
    assert.equal(ds.stdout, `${image} 3`)
  })

  test('a second run is a no-op, and never touches the saved PSK', async () => {
    const before = readFileSync(join(dir, 'edgemesh-psk.txt'), 'utf8')
    const r = await install(['--yes'])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /already installed with these settings: nothing to change/)
    assert.match((await helm(['status', 'edgemesh', '-n', 'kubeedge', '-o', 'json'])).stdout, /"version":1\b/)
    assert.equal(readFileSync(join(dir, 'edgemesh-psk.txt'), 'utf8'), before)
    const other = await install(['--yes', '--psk', 'another key that is long enough'])
    assert.notEqual(other.code, 0)
    assert.match(other.stderr, /holds another PSK: it is never overwritten/)
    const elsewhere = await install(['--yes', '--psk-file', join(dir, 'elsewhere.txt'), '--psk', 'another key that is long enough'])
    assert.notEqual(elsewhere.code, 0)
    assert.match(elsewhere.stderr, /cluster already runs with another PSK/)
    assert.equal(readFileSync(join(dir, 'edgemesh-psk.txt'), 'utf8'), before)
  })

  test('an upgrade that cannot roll out is rolled back by Helm', async () => {
    kubeletPaused = true
    try {
      const r = await install(['--yes', '--image', 'registry.invalid/edgemesh-agent:broken', '--timeout', '8s'])
      assert.notEqual(r.code, 0)
      assert.match(r.stderr, /rolled back/)
    } finally {
      kubeletPaused = false
    }
    const ds = await kubectl(['-n', 'kubeedge', 'get', 'daemonset', 'edgemesh-agent', '-o', 'jsonpath={.spec.template.spec.containers[0].image}'])
    assert.equal(ds.stdout, readFileSync(join(bundle, 'images/IMAGE'), 'utf8').trim())
    const history = await helm(['history', 'edgemesh', '-n', 'kubeedge', '-o', 'json'])
    assert.match(history.stdout, /Rollback to 1/)
  })

  test('interactive: asks 是否安装 EdgeMesh? (y/n) on a terminal; n installs nothing, y installs', async () => {
    const args = ['--namespace', 'kubeedge-b', '--release', 'edgemesh-b', '--psk-file', join(dir, 'b-psk.txt'), '--relay', 'k8s-master=152.136.201.36']
    const no = await inPty(args, 'n')
    assert.match(no.out, /是否安装 EdgeMesh\? \(y\/n\)/)
    assert.notEqual(no.code, 0)
    assert.match(no.out, /Not installed/)
    assert.ok(!existsSync(join(dir, 'b-psk.txt')))
    const yes = await inPty(args, 'y')
    assert.equal(yes.code, 0, yes.out)
    assert.equal(statSync(join(dir, 'b-psk.txt')).mode & 0o777, 0o600)
    assert.match((await helm(['status', 'edgemesh-b', '-n', 'kubeedge-b', '-o', 'json'])).stdout, /"status":"deployed"/)
  })

  test('--uninstall removes the release and the edge CNI\'s block claims, and keeps the PSK file and other Leases', async () => {
    const lease = (name: string, labels: Record<string, string>): ObjectRef & { metadata: { labels: Record<string, string> }, spec: object } => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'kubeedge-b', labels }, spec: { holderIdentity: 'edge-1' } })
    await cp.apply(lease('pod-block-10-244-64-0-24', { 'edgemesh.kubeedge.io/pod-block': 'true' }))
    await cp.apply(lease('pod-block-10-244-65-0-24', { 'edgemesh.kubeedge.io/pod-block': 'true' }))
    await cp.apply(lease('someone-elses', {}))
    const r = await install(['--uninstall', '--namespace', 'kubeedge-b', '--release', 'edgemesh-b', '--psk-file', join(dir, 'b-psk.txt')])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout + r.stderr, /released 2 edge CNI pod block claim/)
    assert.equal((await helm(['list', '-n', 'kubeedge-b', '-q'])).stdout.trim(), '')
    assert.equal((await kubectl(['-n', 'kubeedge-b', 'get', 'lease', '-o', 'name'])).stdout.trim(), 'lease.coordination.k8s.io/someone-elses')
    assert.ok(existsSync(join(dir, 'b-psk.txt')))
  })

  /** Runs install.sh on a pseudo-terminal (util-linux `script`) and answers the prompt. */
  async function inPty (args: string[], answer: string): Promise<{ code: number, out: string }> {
    const command = ['bash', join(bundle, 'install.sh'), ...args].map(a => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
    const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: dir, env: { ...process.env, ...env } })
    let out = ''
    let answered = false
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (!answered && out.includes('(y/n)')) { answered = true; child.stdin.write(`${answer}\n`) }
    })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const code = await new Promise<number>(resolve => child.on('exit', c => resolve(c ?? 1)))
    return { code, out }
  }
})
