/**
 * The least-privilege ClusterRole from src/kube/rbac.ts against a real API
 * server with RBAC on, and every connection mode (kubeconfig, in-cluster,
 * metaServer over TLS) talking to it.
 */
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KubeClient } from '../../../src/kube/client.ts'
import { resolveKubeConnection, SERVICE_ACCOUNT_CA, SERVICE_ACCOUNT_TOKEN } from '../../../src/kube/connection.ts'
import type { KubeAPISettings, KubeConnection } from '../../../src/kube/connection.ts'
import { KubeForbiddenError, KubeResourceNotFoundError, KubeUnauthorizedError, KubeUnreachableError } from '../../../src/kube/errors.ts'
import { KubeInformer } from '../../../src/kube/informer.ts'
import { AGENT_RULES, clusterRole } from '../../../src/kube/rbac.ts'
import type { PolicyRule } from '../../../src/kube/rbac.ts'
import { RESOURCES } from '../../../src/kube/types.ts'
import type { KubeObject, ResourceType } from '../../../src/kube/types.ts'
import { eventually, haveControlPlaneTools, startControlPlane } from '../../helpers/control-plane.ts'
import type { ControlPlane } from '../../helpers/control-plane.ts'
import { noopLogger } from '../../../src/observability/logger.ts'

const ROLE = 'edgemesh-agent-test'
const AGENT_READS = [RESOURCES.services, RESOURCES.endpoints, RESOURCES.endpointSlices, RESOURCES.nodes, RESOURCES.destinationRules]

function base (over: Partial<KubeAPISettings> = {}, security: Partial<KubeAPISettings['metaServer']['security']> = {}): KubeAPISettings {
  return {
    master: '',
    kubeConfig: '',
    contentType: 'application/json',
    qps: 100,
    burst: 200,
    metaServer: {
      server: 'http://127.0.0.1:10550',
      security: { requireAuthorization: false, insecureSkipTLSVerify: false, tlsCaFile: '', tlsCertFile: '', tlsPrivateKeyFile: '', ...security }
    },
    ...over
  }
}

function istioCrd (plural: string, kind: string): KubeObject & Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.networking.istio.io` },
    spec: {
      group: 'networking.istio.io',
      scope: 'Namespaced',
      names: { plural, kind, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [{ name: 'v1alpha3', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }]
    }
  }
}

function withoutVerb (rules: readonly PolicyRule[], resource: string, verb: string): PolicyRule[] {
  return rules.flatMap(r => {
    if (!r.resources.includes(resource)) return [r]
    const rest = r.resources.filter(x => x !== resource)
    return [
      ...(rest.length > 0 ? [{ ...r, resources: rest }] : []),
      { apiGroups: r.apiGroups, resources: [resource], verbs: r.verbs.filter(v => v !== verb) }
    ]
  })
}

describe('RBAC and connection modes against a real API server', { skip: haveControlPlaneTools() ? false : 'control plane not built (bash scripts/tools/build-kube.sh)' }, () => {
  let cp: ControlPlane
  let dir = ''
  let token = ''
  const clients: KubeClient[] = []
  const informers: Array<KubeInformer<KubeObject>> = []

  const newClient = (c: KubeConnection): KubeClient => {
    const k = new KubeClient(c)
    clients.push(k)
    return k
  }
  const newInformer = (client: KubeClient, resource: ResourceType): KubeInformer<KubeObject> => {
    const i = new KubeInformer<KubeObject>({ resource, backoff: { initialMs: 100, maxMs: 1000 } }, { client, logger: noopLogger })
    informers.push(i)
    return i
  }
  /** The agent's ServiceAccount token, read from a kubeconfig `tokenFile` like a mounted token. */
  const agentKubeconfig = (): string => {
    const tokenFile = join(dir, 'agent-token')
    writeFileSync(tokenFile, token)
    const path = join(dir, 'agent.kubeconfig')
    writeFileSync(path, [
      'current-context: agent',
      `clusters: [{name: test, cluster: {server: '${cp.server}', certificate-authority: ca.crt}}]`,
      'contexts: [{name: agent, context: {cluster: test, user: agent}}]',
      'users: [{name: agent, user: {tokenFile: agent-token}}]'
    ].join('\n'))
    return path
  }

  before(async () => {
    cp = await startControlPlane()
    dir = mkdtempSync(join(tmpdir(), 'edgemesh-rbac-'))
    writeFileSync(join(dir, 'ca.crt'), cp.ca)
    await cp.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kubeedge' } })
    for (const [plural, kind] of [['destinationrules', 'DestinationRule'], ['gateways', 'Gateway'], ['virtualservices', 'VirtualService']] as const) {
      await cp.apply(istioCrd(plural, kind))
    }
    await cp.apply(clusterRole(ROLE, AGENT_RULES) as never)
    await cp.apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: ROLE },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: ROLE },
      subjects: [
        { kind: 'ServiceAccount', name: 'edgemesh-agent', namespace: 'kubeedge' },
        { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'edge-node-1' }
      ]
    })
    token = await cp.createServiceAccountToken('kubeedge', 'edgemesh-agent')
    // CRDs are served once Established.
    await eventually('Istio CRDs served', async () => (await cp.request('GET', '/apis/networking.istio.io/v1alpha3/virtualservices')).status === 200, 20_000, 100)
  })
  after(async () => {
    await Promise.all(informers.map(i => i.stop()))
    for (const c of clients) c.close()
    await cp?.stop()
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  test('the agent ClusterRole is enough for every informer (ServiceAccount token via kubeconfig tokenFile)', async () => {
    const conn = resolveKubeConnection(base({ kubeConfig: agentKubeconfig() }), { env: {} })
    assert.equal(conn.mode, 'ManualMode')
    assert.equal(conn.tokenFile, join(dir, 'agent-token'))
    const client = newClient(conn)
    const infs = AGENT_READS.map(r => newInformer(client, r))
    await Promise.all(infs.map(i => i.start()))
    assert.ok(infs.every(i => i.hasSynced()))
    await cp.apply({ apiVersion: 'networking.istio.io/v1alpha3', kind: 'DestinationRule', metadata: { name: 'dr', namespace: 'default' }, spec: { host: 'web', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } } })
    await eventually('DestinationRule seen', () => infs[4]?.get('default/dr') !== undefined, 1000)
    // Nothing beyond the rules: Secrets, Pods and the gateway's Istio resources stay closed.
    await assert.rejects(client.list(RESOURCES.secrets), (err: unknown) =>
      err instanceof KubeForbiddenError && err.verb === 'list' && err.resource === 'secrets' && err.user === 'system:serviceaccount:kubeedge:edgemesh-agent')
    await assert.rejects(client.list(RESOURCES.pods), KubeForbiddenError)
    await assert.rejects(client.list(RESOURCES.virtualServices), KubeForbiddenError)
  })

  test('without watch on endpointslices, the informer retries and names verb and resource, then syncs once RBAC allows it', async () => {
    const client = newClient(resolveKubeConnection(base({ kubeConfig: agentKubeconfig() }), { env: {} }))
    await cp.apply(clusterRole(ROLE, withoutVerb(AGENT_RULES, 'endpointslices', 'watch')) as never)
    try {
      // RBAC changes reach the authorizer through its own informer: wait for it.
      await eventually('watch refused', async () => {
        try {
          (await client.watch(RESOURCES.endpointSlices, { timeoutSeconds: 1 })).close()
          return false
        } catch (err) {
          return err instanceof KubeForbiddenError
        }
      }, 10_000, 50)
      const inf = newInformer(client, RESOURCES.endpointSlices)
      await inf.start()
      await eventually('the refusal is recorded', () => inf.stats().lastError instanceof KubeForbiddenError, 5000, 20)
      const err = inf.stats().lastError as KubeForbiddenError
      assert.equal(err.code, 'EM_ERR_KUBE_FORBIDDEN')
      assert.equal(err.verb, 'watch')
      assert.equal(err.resource, 'endpointslices')
      assert.match(err.message, /^forbidden: cannot watch resource "endpointslices" in API group "discovery\.k8s\.io" \(cluster scope\) — grant it in the ClusterRole \(user "system:serviceaccount:kubeedge:edgemesh-agent", server https:\/\/127\.0\.0\.1:\d+ \(kubeconfig .*agent\.kubeconfig \(context agent\)\)\)$/)
      // Services are unaffected.
      await newInformer(client, RESOURCES.services).start()

      await cp.apply(clusterRole(ROLE, withoutVerb(AGENT_RULES, 'endpointslices', 'list')) as never)
      await eventually('list refused', async () => {
        try { await client.list(RESOURCES.endpointSlices); return false } catch (err) { return err instanceof KubeForbiddenError }
      }, 10_000, 50)
      const listing = newInformer(client, RESOURCES.endpointSlices)
      await listing.start()
      assert.equal(listing.hasSynced(), false)
      await eventually('list refusal recorded', () => {
        const e = listing.stats().lastError
        return e instanceof KubeForbiddenError && e.verb === 'list' && /cannot list resource "endpointslices"/.test(e.message)
      }, 5000, 20)
      // The fix applied: the retrying informer syncs without a restart.
      await cp.apply(clusterRole(ROLE, AGENT_RULES) as never)
      await listing.waitForSync(AbortSignal.timeout(40_000))
    } finally {
      await cp.apply(clusterRole(ROLE, AGENT_RULES) as never)
    }
  })

  test('absent Istio CRDs are KubeResourceNotFoundError, not a retry loop', async () => {
    await cp.delete(istioCrd('gateways', 'Gateway'))
    const client = newClient(resolveKubeConnection(base({ kubeConfig: cp.kubeconfigPath }), { env: {} }))
    await eventually('gateways gone', async () => (await cp.request('GET', '/apis/networking.istio.io/v1alpha3/gateways')).status === 404, 20_000, 100)
    await assert.rejects(newInformer(client, RESOURCES.gateways).start(), (err: unknown) =>
      err instanceof KubeResourceNotFoundError && err.resource === 'gateways' && err.group === 'networking.istio.io')
  })

  test('CloudMode: in-cluster env + mounted token and CA reach the API server', async () => {
    const port = new URL(cp.server).port
    const env = { KUBERNETES_PORT: `tcp://127.0.0.1:${port}`, KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }
    const mounted: Record<string, string> = { [SERVICE_ACCOUNT_TOKEN]: token, [SERVICE_ACCOUNT_CA]: cp.ca }
    const readFile = (p: string): Buffer => {
      const v = mounted[p]
      if (v === undefined) throw new Error(`ENOENT ${p}`)
      return Buffer.from(v)
    }
    const conn = resolveKubeConnection(base(), { env, readFile })
    assert.equal(conn.description, `in-cluster https://127.0.0.1:${port}`)
    const client = new KubeClient(conn, { readFile })
    clients.push(client)
    const list = await client.list(RESOURCES.services)
    assert.ok(list.items.some(s => s.metadata.name === 'kubernetes'))
  })

  test('EdgeMode with requireAuthorization: metaServer over TLS with a client certificate', async () => {
    const { certFile, keyFile } = cp.createClientCert('edge-node-1')
    const noToken = (p: string): Buffer => { if (p.startsWith('/var/run/secrets/')) throw new Error('ENOENT'); return readFileSync(p) }
    const conn = resolveKubeConnection(
      base({ metaServer: { server: cp.server.replace('https://', 'http://'), security: { requireAuthorization: true, insecureSkipTLSVerify: false, tlsCaFile: join(dir, 'ca.crt'), tlsCertFile: certFile, tlsPrivateKeyFile: keyFile } } }),
      { env: {}, readFile: noToken })
    assert.equal(conn.mode, 'EdgeMode')
    assert.equal(conn.server, cp.server)
    const inf = newInformer(newClient(conn), RESOURCES.endpointSlices)
    await inf.start()
    assert.ok(inf.hasSynced())
  })

  test('EdgeMode insecureSkipTLSVerify + token works; a wrong CA is KubeUnreachableError; a bad token is KubeUnauthorizedError', async () => {
    const metaServer = (security: Partial<KubeAPISettings['metaServer']['security']>): KubeAPISettings =>
      base({}, { requireAuthorization: true, ...security, tlsCaFile: security.tlsCaFile ?? '', tlsCertFile: '', tlsPrivateKeyFile: '' })
    const withServer = (s: KubeAPISettings): KubeAPISettings => ({ ...s, metaServer: { ...s.metaServer, server: cp.server } })
    const sa = (t: string) => (p: string): Buffer => {
      if (p === SERVICE_ACCOUNT_TOKEN) return Buffer.from(t)
      return readFileSync(p)
    }
    const insecure = resolveKubeConnection(withServer(metaServer({ insecureSkipTLSVerify: true })), { env: {}, readFile: sa(token) })
    assert.equal(insecure.tokenFile, SERVICE_ACCOUNT_TOKEN)
    const ok = new KubeClient(insecure, { readFile: sa(token) })
    clients.push(ok)
    assert.ok((await ok.list(RESOURCES.nodes)).metadata.resourceVersion !== '')

    const bad = new KubeClient(insecure, { readFile: sa('not-a-token') })
    clients.push(bad)
    await assert.rejects(bad.list(RESOURCES.nodes), KubeUnauthorizedError)

    // Verification on, but against the system roots: our test CA is unknown there.
    const strict: KubeConnection = { ...insecure, tls: { insecureSkipTLSVerify: false } }
    const c = new KubeClient(strict, { readFile: sa(token) })
    clients.push(c)
    await assert.rejects(c.list(RESOURCES.nodes), (err: unknown) =>
      err instanceof KubeUnreachableError && err.message.includes(cp.server) && /certificate/i.test(err.message))
  })
})
