/**
 * The Helm charts with real Helm (built from its Go module by
 * scripts/tools/build-helm.sh): lint, the seed's `--set` lines rendered into
 * an edgemesh-agent.yaml our loader accepts, install and uninstall against
 * the real test API server, and the chart's ServiceAccount running the
 * agent's informers (least privilege).
 */
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'
import { parseConfig } from '../../../src/config/load.ts'
import { AGENT_NAMESPACE_RULES, AGENT_RULES } from '../../../src/kube/rbac.ts'
import { BlockClaims, kubeLeaseApi } from '../../../src/cni/blocks.ts'
import { KubeClient } from '../../../src/kube/client.ts'
import { KubeInformer } from '../../../src/kube/informer.ts'
import { resolveKubeConnection } from '../../../src/kube/connection.ts'
import { RESOURCES } from '../../../src/kube/types.ts'
import type { KubeObject } from '../../../src/kube/types.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { GATEWAY_NAMESPACE_RULES, GATEWAY_RULES } from '../../../src/kube/rbac.ts'
import { MANIFESTS, renderManifest } from '../../../scripts/gen-manifests.ts'
import { readFileSync } from 'node:fs'
import { eventually, haveControlPlaneTools, startControlPlane, toolsBin } from '../../helpers/control-plane.ts'
import type { ControlPlane } from '../../helpers/control-plane.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const CHART = join(root, 'deploy/helm/edgemesh')
const HELM = join(toolsBin(), 'helm')
const PSK = 'edgemesh-ts-test-psk-not-for-any-real-cluster'
const skip = existsSync(HELM) ? {} : { skip: 'helm not built (scripts/tools/build-helm.sh)' }

interface Run { code: number, stdout: string, stderr: string }
async function helm (args: string[], env: Record<string, string> = {}): Promise<Run> {
  return await new Promise(resolve => {
    execFile(HELM, args, { env: { ...process.env, HELM_CACHE_HOME: join(tmpdir(), 'edgemesh-helm-cache'), HELM_CONFIG_HOME: join(tmpdir(), 'edgemesh-helm-config'), HELM_DATA_HOME: join(tmpdir(), 'edgemesh-helm-data'), ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

type Obj = KubeObject & Record<string, any>
async function render (sets: string[]): Promise<Obj[]> {
  const r = await helm(['template', 'edgemesh', CHART, '--namespace', 'kubeedge', ...sets.flatMap(s => ['--set', s])])
  assert.equal(r.code, 0, r.stderr)
  return parseAllDocuments(r.stdout).map(d => d.toJS() as Obj).filter(o => o !== null)
}

function find (objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find(x => x.kind === kind && x.metadata.name === name)
  assert.ok(o !== undefined, `${kind} ${name} rendered`)
  return o
}

function agentConfig (objs: Obj[]): ReturnType<typeof parseConfig<'agent'>> {
  const cm = find(objs, 'ConfigMap', 'edgemesh-agent-cfg')
  const loaded = parseConfig('agent', cm.data['edgemesh-agent.yaml'] as string, { file: 'edgemesh-agent.yaml' })
  assert.deepEqual(loaded.warnings, [], 'the rendered config has no unknown keys')
  return loaded
}

describe('Helm chart edgemesh', skip, () => {
  test('helm lint passes', async () => {
    const r = await helm(['lint', CHART, '--set', `agent.psk=${PSK}`])
    assert.equal(r.code, 0, r.stdout + r.stderr)
  })

  test('the seed command, with our image, renders relay nodes, the PSK wiring and a least-privilege DaemonSet', async () => {
    // The seed names upstream's image (covered below); ours is the chart's default.
    const objs = await render([`agent.psk=${PSK}`,
      'agent.relayNodes[0].nodeName=k8s-master', 'agent.relayNodes[0].advertiseAddress={152.136.201.36}'])
    const { config } = agentConfig(objs)
    assert.deepEqual(config.modules.edgeTunnel.relayNodes, [{ nodeName: 'k8s-master', advertiseAddress: ['152.136.201.36'] }])
    assert.equal(config.modules.edgeTunnel.enable, true)
    assert.equal(config.modules.edgeProxy.enable, true)
    assert.equal(config.modules.edgeTunnel.psk.path, '/etc/edgemesh/psk')
    assert.equal(find(objs, 'Secret', 'edgemesh-agent-psk').stringData.psk, PSK)

    const ds = find(objs, 'DaemonSet', 'edgemesh-agent')
    assert.deepEqual(ds.spec.selector.matchLabels, { 'k8s-app': 'kubeedge', kubeedge: 'edgemesh-agent' })
    assert.deepEqual(ds.spec.updateStrategy.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 })
    const pod = ds.spec.template.spec
    assert.equal(pod.hostNetwork, true)
    const c = pod.containers[0]
    assert.equal(c.image, 'kubeedge/edgemesh-agent:v0.1.0')
    assert.equal(c.securityContext.privileged, false)
    assert.deepEqual(c.securityContext.capabilities.add, ['NET_ADMIN', 'NET_RAW', 'NET_BIND_SERVICE'])
    assert.deepEqual(c.env.map((e: { name: string }) => e.name), ['NODE_NAME', 'NAMESPACE'])
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: config.commonConfig.statusPort, host: '127.0.0.1' })
    assert.equal(c.livenessProbe.httpGet.path, '/healthz')
    const pskMount = c.volumeMounts.find((m: { name: string }) => m.name === 'psk')
    assert.equal(pskMount.mountPath, config.modules.edgeTunnel.psk.path)
    assert.equal(pod.volumes.find((v: { name: string }) => v.name === 'psk').secret.secretName, 'edgemesh-agent-psk')

    const role = find(objs, 'ClusterRole', 'edgemesh-agent')
    assert.deepEqual(role.rules, AGENT_RULES.map(r => ({ apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] })))
    const blocks = find(objs, 'Role', 'edgemesh-agent')
    assert.equal(blocks.metadata.namespace, 'kubeedge')
    assert.deepEqual(blocks.rules, AGENT_NAMESPACE_RULES.map(r => ({ apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] })))
    assert.equal(find(objs, 'RoleBinding', 'edgemesh-agent').roleRef.name, 'edgemesh-agent')
  })

  test('two relays, meshCIDRConfig (and upstream agent.cloudCIDR), module settings pass through', async () => {
    const objs = await render([`agent.psk=${PSK}`,
      'agent.relayNodes[0].nodeName=k8s-master', 'agent.relayNodes[0].advertiseAddress={152.136.201.36}',
      'agent.relayNodes[1].nodeName=k8s-node1', 'agent.relayNodes[1].advertiseAddress={43.139.49.14,k8s-node1.example.com}',
      'agent.meshCIDRConfig.cloudCIDR={10.244.1.0/24}', 'agent.edgeCIDR={10.244.5.0/24}', 'agent.modules.edgeCNI.enable=true',
      'agent.modules.edgeTunnel.psk.enable=false', 'agent.modules.edgeDNS.cacheDNS.autoDetect=false'])
    const { config } = agentConfig(objs)
    assert.deepEqual(config.modules.edgeTunnel.relayNodes.map(r => [r.nodeName, r.advertiseAddress]), [
      ['k8s-master', ['152.136.201.36']], ['k8s-node1', ['43.139.49.14', 'k8s-node1.example.com']]])
    assert.deepEqual(config.modules.edgeCNI.meshCIDRConfig, { cloudCIDR: ['10.244.1.0/24'], edgeCIDR: ['10.244.5.0/24'] })
    assert.equal(config.modules.edgeCNI.enable, true)
    // The seed's edge CNI step sets the CIDRs only: they turn the module on, unless it is set off.
    const seedCni = agentConfig(await render([`agent.psk=${PSK}`, 'agent.meshCIDRConfig.cloudCIDR={10.244.0.0/18}', 'agent.meshCIDRConfig.edgeCIDR={10.244.64.0/18}'])).config
    assert.equal(seedCni.modules.edgeCNI.enable, true)
    const off = agentConfig(await render([`agent.psk=${PSK}`, 'agent.meshCIDRConfig.edgeCIDR={10.244.64.0/18}', 'agent.modules.edgeCNI.enable=false'])).config
    assert.equal(off.modules.edgeCNI.enable, false)
    assert.equal(agentConfig(await render([`agent.psk=${PSK}`])).config.modules.edgeCNI.enable, false, 'no CIDRs, no edge CNI')
    // With the edge CNI, an init container installs the plugin into the host's directories.
    const cniPod = find(await render([`agent.psk=${PSK}`, 'agent.meshCIDRConfig.edgeCIDR={10.244.64.0/18}', 'agent.cni.confDir=/etc/kubeedge/cni']), 'DaemonSet', 'edgemesh-agent').spec.template.spec
    assert.deepEqual(cniPod.initContainers?.map((c: Obj) => [c.name, c.args.join(' ')]), [['install-cni', 'cni install --host-root /host --bin-dir /opt/cni/bin --conf-dir /etc/kubeedge/cni --install-dir /opt/edgemesh']])
    assert.deepEqual(cniPod.initContainers[0].volumeMounts.map((m: { mountPath: string }) => m.mountPath), ['/host/opt/cni/bin', '/host/etc/kubeedge/cni', '/host/opt/edgemesh'])
    assert.deepEqual(cniPod.volumes.filter((v: Obj) => v.name.startsWith('cni-')).map((v: Obj) => v.hostPath.path), ['/opt/cni/bin', '/etc/kubeedge/cni', '/opt/edgemesh'])
    assert.equal(find(await render([`agent.psk=${PSK}`]), 'DaemonSet', 'edgemesh-agent').spec.template.spec.initContainers, undefined, 'no edge CNI, no plugin')
    assert.equal(find(await render([`agent.psk=${PSK}`, 'agent.meshCIDRConfig.edgeCIDR={10.244.64.0/18}', 'agent.cni.install=false']), 'DaemonSet', 'edgemesh-agent').spec.template.spec.initContainers, undefined)
    // Upstream's templates could never render `false`; these can.
    assert.equal(config.modules.edgeTunnel.psk.enable, false)
    assert.equal(config.modules.edgeDNS.cacheDNS.autoDetect, false)
  })

  test('upstream psk ConfigMap or an existing Secret can hold the PSK', async () => {
    const cm = await render(['agent.existingPskConfigMap=edgemesh-agent-psk'])
    assert.equal(find(cm, 'DaemonSet', 'edgemesh-agent').spec.template.spec.volumes.find((v: { name: string }) => v.name === 'psk').configMap.name, 'edgemesh-agent-psk')
    assert.ok(!cm.some(o => o.kind === 'Secret'))
    const secret = await render(['agent.existingPskSecret=my-psk'])
    assert.equal(find(secret, 'DaemonSet', 'edgemesh-agent').spec.template.spec.volumes.find((v: { name: string }) => v.name === 'psk').secret.secretName, 'my-psk')
  })

  test('upstream\'s Go image runs under the chart: no arguments, no probes it cannot answer, privileged', async () => {
    const upstream = find(await render([`agent.psk=${PSK}`, 'agent.image=kubeedge/edgemesh-agent:v1.17.0']), 'DaemonSet', 'edgemesh-agent').spec.template.spec.containers[0]
    assert.equal(upstream.args, undefined)
    assert.equal(upstream.livenessProbe, undefined)
    assert.equal(upstream.readinessProbe, undefined)
    assert.equal(upstream.securityContext.privileged, true)
    const ours = find(await render([`agent.psk=${PSK}`]), 'DaemonSet', 'edgemesh-agent').spec.template.spec.containers[0]
    assert.deepEqual(ours.args, ['agent', '--config-file', '/etc/edgemesh/config/edgemesh-agent.yaml'])
    assert.equal(ours.readinessProbe.httpGet.path, '/readyz')
    assert.equal(ours.securityContext.privileged, false)
  })

  test('a value of the wrong type is refused by values.schema.json, naming the field', async () => {
    const r = await helm(['template', 'edgemesh', CHART, '--set', `agent.psk=${PSK}`, '--set', 'agent.modules.edgeDNS.listenPort=dns'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /listenPort/)
  })

  test('no PSK, or a too short one, fails with how to generate one', async () => {
    const none = await helm(['template', 'edgemesh', CHART])
    assert.notEqual(none.code, 0)
    assert.match(none.stderr, /agent\.psk is required: generate one with `edgemesh psk generate` or `openssl rand -base64 32`/)
    const short = await helm(['template', 'edgemesh', CHART, '--set', 'agent.psk=abc'])
    assert.notEqual(short.code, 0)
    assert.match(short.stderr, /agent\.psk is too short/)
    // The seed's placeholder and upstream's chart default are public: refused with how to make a secret one.
    for (const pub of ['<your-psk-string>', 'JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=']) {
      const r = await helm(['template', 'edgemesh', CHART, '--set', `agent.psk=${pub}`])
      assert.notEqual(r.code, 0, pub)
      assert.match(r.stderr, /agent\.psk is a published placeholder or upstream's default PSK.*edgemesh psk generate/)
      const g = await helm(['template', 'gw', join(root, 'deploy/helm/edgemesh-gateway'), '--set', 'nodeName=n1', '--set', `psk=${pub}`])
      assert.notEqual(g.code, 0, pub)
      assert.match(g.stderr, /psk is a published placeholder/)
    }
  })
})

describe('Helm chart edgemesh-gateway and the plain manifests', skip, () => {
  const GATEWAY = join(root, 'deploy/helm/edgemesh-gateway')

  test('the gateway variant renders a config the gateway loads, pinned to its node', async () => {
    const lint = await helm(['lint', GATEWAY, '--set', 'nodeName=k8s-node1', '--set', `psk=${PSK}`])
    assert.equal(lint.code, 0, lint.stdout + lint.stderr)
    const r = await helm(['template', 'edgemesh-gateway', GATEWAY, '--namespace', 'kubeedge', '--set', 'image=kubeedge/edgemesh-gateway:v1.17.0',
      '--set', 'nodeName=k8s-node1', '--set', `psk=${PSK}`, '--set', 'relayNodes[0].nodeName=k8s-master,relayNodes[0].advertiseAddress={152.136.201.36}'])
    assert.equal(r.code, 0, r.stderr)
    const objs = parseAllDocuments(r.stdout).map(d => d.toJS() as Obj).filter(o => o !== null)
    const cm = find(objs, 'ConfigMap', 'edgemesh-gateway-cfg')
    const { config, warnings } = parseConfig('gateway', cm.data['edgemesh-gateway.yaml'] as string)
    assert.deepEqual(warnings, [])
    assert.equal(config.modules.edgeGateway.enable, true)
    assert.deepEqual(config.modules.edgeTunnel.relayNodes, [{ nodeName: 'k8s-master', advertiseAddress: ['152.136.201.36'] }])
    const dep = find(objs, 'Deployment', 'edgemesh-gateway')
    assert.equal(dep.spec.template.spec.nodeName, 'k8s-node1')
    // The seed's line names upstream's Go image: its own entry point, privileged as upstream runs it.
    assert.equal(dep.spec.template.spec.containers[0].args, undefined)
    assert.equal(dep.spec.template.spec.containers[0].securityContext.privileged, true)
    const ours = await helm(['template', 'edgemesh-gateway', GATEWAY, '--set', 'nodeName=k8s-node1', '--set', `psk=${PSK}`])
    const ourDep = find(parseAllDocuments(ours.stdout).map(d => d.toJS() as Obj).filter(o => o !== null), 'Deployment', 'edgemesh-gateway')
    assert.equal(ourDep.spec.template.spec.containers[0].image, 'kubeedge/edgemesh-agent:v0.1.0', 'the image npm run image and the bundle build')
    assert.deepEqual(ourDep.spec.template.spec.containers[0].args, ['gateway', '--config-file', '/etc/edgemesh/config/edgemesh-gateway.yaml'])
    assert.deepEqual(find(objs, 'ClusterRole', 'edgemesh-gateway').rules, GATEWAY_RULES.map(x => ({ apiGroups: [...x.apiGroups], resources: [...x.resources], verbs: [...x.verbs] })))
    const leases = find(objs, 'Role', 'edgemesh-gateway')
    assert.equal(leases.metadata.namespace, 'kubeedge')
    assert.deepEqual(leases.rules, GATEWAY_NAMESPACE_RULES.map(x => ({ apiGroups: [...x.apiGroups], resources: [...x.resources], verbs: [...x.verbs] })))
    assert.equal(find(objs, 'RoleBinding', 'edgemesh-gateway').roleRef.name, 'edgemesh-gateway')
    const missing = await helm(['template', 'edgemesh-gateway', GATEWAY, '--set', `psk=${PSK}`])
    assert.match(missing.stderr, /nodeName is required/)
  })

  test('deploy/manifests are the charts rendered (npm run gen:manifests)', () => {
    for (const m of MANIFESTS) assert.equal(readFileSync(join(root, m.file), 'utf8'), renderManifest(m.args), `${m.file} is out of date`)
  })
})

describe('Helm install against the test API server', { ...skip, ...(haveControlPlaneTools() ? {} : { skip: 'no kube-apiserver/etcd (scripts/tools/build-kube.sh)' }) }, () => {
  let cp: ControlPlane
  let dir: string

  before(async () => {
    cp = await startControlPlane()
    dir = mkdtempSync(join(tmpdir(), 'edgemesh-helm-'))
  })
  after(async () => {
    await cp?.stop()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  test('install creates the objects; the chart ServiceAccount runs every agent informer; uninstall removes them', async () => {
    const kube = ['--kubeconfig', cp.kubeconfigPath]
    // The seed's lines as a shell passes them (its quotes gone), with a local chart for the online URL and a real PSK
    // for the placeholder (refused, see above).
    const install = await helm(['install', 'edgemesh', CHART, '--namespace', 'kubeedge', '--create-namespace', ...kube,
      '--set', 'agent.image=kubeedge/edgemesh-agent:v1.17.0', '--set', `agent.psk=${PSK}`,
      '--set', 'agent.relayNodes[0].nodeName=k8s-master,agent.relayNodes[0].advertiseAddress={1.1.1.1}',
      '--set', 'agent.relayNodes[1].nodeName=ke-edge1,agent.relayNodes[1].advertiseAddress={2.2.2.2,3.3.3.3}'])
    assert.equal(install.code, 0, install.stderr)
    // NOTES.txt: the relays and the ports they must accept.
    assert.match(install.stdout, /Relay nodes: k8s-master \(1\.1\.1\.1\) ke-edge1 \(2\.2\.2\.2, 3\.3\.3\.3\)/)
    assert.match(install.stdout, /Relays must accept TCP 20006 from every node \(libp2p and the TLS data path share it\); open it between/)
    for (const path of ['/apis/apps/v1/namespaces/kubeedge/daemonsets/edgemesh-agent', '/api/v1/namespaces/kubeedge/configmaps/edgemesh-agent-cfg',
      '/api/v1/namespaces/kubeedge/secrets/edgemesh-agent-psk', '/apis/rbac.authorization.k8s.io/v1/clusterroles/edgemesh-agent',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/destinationrules.networking.istio.io']) {
      assert.equal((await cp.request('GET', path)).status, 200, path)
    }
    // A second install of the same release is refused.
    const again = await helm(['install', 'edgemesh', CHART, '--namespace', 'kubeedge', ...kube, '--set', `agent.psk=${PSK}`])
    assert.notEqual(again.code, 0)
    assert.match(again.stderr, /cannot re-use a name that is still in use/)

    // Least privilege: the chart's own ServiceAccount is enough for every informer the agent runs.
    await eventually('Istio CRDs served', async () => (await cp.request('GET', '/apis/networking.istio.io/v1alpha3/destinationrules')).status === 200, 20_000, 100)
    const token = await cp.createServiceAccountToken('kubeedge', 'edgemesh-agent')
    writeFileSync(join(dir, 'ca.crt'), cp.ca)
    writeFileSync(join(dir, 'token'), token)
    writeFileSync(join(dir, 'agent.kubeconfig'), [
      'current-context: agent',
      `clusters: [{name: test, cluster: {server: '${cp.server}', certificate-authority: ca.crt}}]`,
      'contexts: [{name: agent, context: {cluster: test, user: agent}}]',
      'users: [{name: agent, user: {tokenFile: token}}]'
    ].join('\n'))
    const conn = resolveKubeConnection({
      master: '',
      kubeConfig: join(dir, 'agent.kubeconfig'),
      contentType: 'application/json',
      qps: 100,
      burst: 200,
      metaServer: { server: '', security: { requireAuthorization: false, insecureSkipTLSVerify: false, tlsCaFile: '', tlsCertFile: '', tlsPrivateKeyFile: '' } }
    }, { env: {} })
    const client = new KubeClient(conn)
    const informers = [RESOURCES.services, RESOURCES.endpoints, RESOURCES.endpointSlices, RESOURCES.nodes, RESOURCES.destinationRules]
      .map(resource => new KubeInformer<KubeObject>({ resource }, { client, logger: noopLogger }))
    try {
      await Promise.all(informers.map(async i => await i.start()))
      assert.ok(informers.every(i => i.hasSynced()))
      await assert.rejects(client.list(RESOURCES.secrets), /forbidden|Forbidden/)
      // Istio Gateways and VirtualServices are the gateway's to read, not the agent's.
      await assert.rejects(client.list(RESOURCES.virtualServices), /forbidden|Forbidden/)
      // The edge CNI's block claims: Leases in the release's namespace, and nowhere else.
      const claims = new BlockClaims({ api: kubeLeaseApi(client), logger: noopLogger }, { nodeName: 'edge-1', cidrs: ['10.244.64.0/18'], namespace: 'kubeedge', stateFile: join(dir, 'cni-block.json') })
      assert.equal(await claims.claim(), '10.244.64.0/24')
      await claims.release()
      await assert.rejects(kubeLeaseApi(client).create('default', { metadata: { name: 'x' } }), /forbidden|Forbidden/)
    } finally {
      await Promise.all(informers.map(async i => await i.stop()))
      client.close()
    }

    const uninstall = await helm(['uninstall', 'edgemesh', '--namespace', 'kubeedge', ...kube])
    assert.equal(uninstall.code, 0, uninstall.stderr)
    await eventually('DaemonSet gone', async () => (await cp.request('GET', '/apis/apps/v1/namespaces/kubeedge/daemonsets/edgemesh-agent')).status === 404, 10_000, 100)
    assert.equal((await cp.request('GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/edgemesh-agent')).status, 404)
  })
})
