import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  loadKubeconfig, normalizeServer, resolveKubeConnection, SERVICE_ACCOUNT_CA, SERVICE_ACCOUNT_TOKEN
} from '../../../src/kube/connection.ts'
import type { KubeAPISettings } from '../../../src/kube/connection.ts'
import { KubeConfigError } from '../../../src/kube/errors.ts'

let dir = ''
before(() => { dir = mkdtempSync(join(tmpdir(), 'edgemesh-kubeconn-')) })
after(() => rmSync(dir, { recursive: true, force: true }))

function settings (over: Partial<KubeAPISettings> = {}, security: Partial<KubeAPISettings['metaServer']['security']> = {}): KubeAPISettings {
  return {
    master: '',
    kubeConfig: '',
    contentType: 'application/vnd.kubernetes.protobuf',
    qps: 100,
    burst: 200,
    metaServer: {
      server: 'http://127.0.0.1:10550',
      security: {
        requireAuthorization: false,
        insecureSkipTLSVerify: false,
        tlsCaFile: '/etc/edgemesh/metaserver/rootCA.crt',
        tlsCertFile: '/etc/edgemesh/metaserver/server.crt',
        tlsPrivateKeyFile: '/etc/edgemesh/metaserver/server.key',
        ...security
      }
    },
    ...over
  }
}

function file (name: string, content: string): string {
  const p = join(dir, name)
  mkdirSync(join(p, '..'), { recursive: true })
  writeFileSync(p, content)
  return p
}

/** Reads real files, but serves the service-account paths from `sa`. */
function reader (sa: Record<string, string> = {}): (p: string) => Buffer {
  return p => {
    if (p in sa) return Buffer.from(sa[p] ?? '')
    if (p.startsWith('/var/run/secrets/')) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' })
    return readFileSync(p)
  }
}

test('EdgeMode by default: plain http to the metaServer, no credentials', () => {
  const c = resolveKubeConnection(settings(), { env: {}, readFile: reader() })
  assert.equal(c.mode, 'EdgeMode')
  assert.equal(c.server, 'http://127.0.0.1:10550')
  assert.equal(c.description, 'metaServer http://127.0.0.1:10550')
  assert.equal(c.token, undefined)
  assert.equal(c.tokenFile, undefined)
  assert.equal(c.tls.insecureSkipTLSVerify, false)
  assert.equal(c.requestedContentType, 'application/vnd.kubernetes.protobuf')
  assert.deepEqual([c.qps, c.burst], [100, 200])
})

test('EdgeMode with requireAuthorization: https, CA + client cert, service account token when mounted', () => {
  const ca = file('ms/rootCA.crt', 'CA')
  const crt = file('ms/server.crt', 'CRT')
  const key = file('ms/server.key', 'KEY')
  const c = resolveKubeConnection(
    settings({}, { requireAuthorization: true, tlsCaFile: ca, tlsCertFile: crt, tlsPrivateKeyFile: key }),
    { env: {}, readFile: reader({ [SERVICE_ACCOUNT_TOKEN]: 'tok' }) })
  assert.equal(c.server, 'https://127.0.0.1:10550')
  assert.equal(c.description, 'metaServer https://127.0.0.1:10550 (TLS, service account token)')
  assert.equal(c.tls.ca?.toString(), 'CA')
  assert.equal(c.tls.cert?.toString(), 'CRT')
  assert.equal(c.tls.key?.toString(), 'KEY')
  assert.equal(c.tls.insecureSkipTLSVerify, false)
  assert.equal(c.tokenFile, SERVICE_ACCOUNT_TOKEN)
})

test('EdgeMode with requireAuthorization + insecureSkipTLSVerify: no files needed, no token when absent', () => {
  const c = resolveKubeConnection(settings({}, { requireAuthorization: true, insecureSkipTLSVerify: true }), { env: {}, readFile: reader() })
  assert.equal(c.server, 'https://127.0.0.1:10550')
  assert.equal(c.tls.insecureSkipTLSVerify, true)
  assert.equal(c.tls.ca, undefined)
  assert.equal(c.tokenFile, undefined)
  assert.equal(c.description, 'metaServer https://127.0.0.1:10550 (TLS unverified)')
})

test('EdgeMode with requireAuthorization and a missing CA file names the setting and the path', () => {
  assert.throws(
    () => resolveKubeConnection(settings({}, { requireAuthorization: true, tlsCaFile: join(dir, 'nope.crt') }), { env: {}, readFile: reader() }),
    (err: unknown) => err instanceof KubeConfigError && err.code === 'EM_ERR_KUBE_CONFIG' &&
      /metaServer\.security\.tlsCaFile: cannot read .*nope\.crt/.test(err.message))
})

test('CloudMode (KUBERNETES_PORT set): in-cluster address, token file and CA', () => {
  const env = { KUBERNETES_PORT: 'tcp://10.96.0.1:443', KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }
  const c = resolveKubeConnection(settings(), { env, readFile: reader({ [SERVICE_ACCOUNT_TOKEN]: 't', [SERVICE_ACCOUNT_CA]: 'CA' }) })
  assert.equal(c.mode, 'CloudMode')
  assert.equal(c.server, 'https://10.96.0.1:443')
  assert.equal(c.description, 'in-cluster https://10.96.0.1:443')
  assert.equal(c.tokenFile, SERVICE_ACCOUNT_TOKEN)
  assert.equal(c.tls.ca?.toString(), 'CA')
})

test('CloudMode brackets an IPv6 service host; a missing ca.crt falls back to system roots', () => {
  const env = { KUBERNETES_PORT: 'x', KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }
  const c = resolveKubeConnection(settings(), { env, readFile: reader({ [SERVICE_ACCOUNT_TOKEN]: 't' }) })
  assert.equal(c.server, 'https://[fd00::1]:443')
  assert.equal(c.tls.ca, undefined)
})

test('CloudMode without the service env or without a token fails clearly', () => {
  assert.throws(() => resolveKubeConnection(settings(), { env: { KUBERNETES_PORT: 'x' }, readFile: reader({ [SERVICE_ACCOUNT_TOKEN]: 't' }) }),
    /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set/)
  const env = { KUBERNETES_PORT: 'x', KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' }
  assert.throws(() => resolveKubeConnection(settings(), { env, readFile: reader() }),
    (err: unknown) => err instanceof KubeConfigError && err.message.includes(SERVICE_ACCOUNT_TOKEN))
})

test('a configured mode wins over detection; ManualMode without an address is in-cluster', () => {
  const env = { KUBERNETES_PORT: 'x', KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' }
  assert.equal(resolveKubeConnection(settings({ mode: 'EdgeMode' }), { env, readFile: reader() }).description, 'metaServer http://127.0.0.1:10550')
  const m = resolveKubeConnection(settings({ mode: 'ManualMode' }), { env, readFile: reader({ [SERVICE_ACCOUNT_TOKEN]: 't' }) })
  assert.equal(m.mode, 'ManualMode')
  assert.equal(m.server, 'https://h:1')
})

test('ManualMode kubeconfig: current context, relative CA file, inline client cert and token', () => {
  file('kc/certs/ca.pem', 'CAFILE')
  const path = file('kc/config', `
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: dev
  cluster: {server: 'https://dev:6443'}
- name: prod-cluster
  cluster:
    server: https://prod.example:6443/
    certificate-authority: certs/ca.pem
    tls-server-name: kubernetes
contexts:
- name: dev
  context: {cluster: dev, user: dev}
- name: prod
  context: {cluster: prod-cluster, user: admin, namespace: kubeedge}
users:
- name: dev
  user: {token: devtoken}
- name: admin
  user:
    token: secret
    client-certificate-data: ${Buffer.from('CERT').toString('base64')}
    client-key-data: ${Buffer.from('KEY').toString('base64')}
`)
  const c = resolveKubeConnection(settings({ kubeConfig: path }), { env: { KUBERNETES_PORT: 'x' }, readFile: reader() })
  assert.equal(c.mode, 'ManualMode')
  assert.equal(c.server, 'https://prod.example:6443')
  assert.equal(c.description, `kubeconfig ${path} (context prod)`)
  assert.equal(c.token, 'secret')
  assert.equal(c.tls.ca?.toString(), 'CAFILE')
  assert.equal(c.tls.cert?.toString(), 'CERT')
  assert.equal(c.tls.key?.toString(), 'KEY')
  assert.equal(c.tls.serverName, 'kubernetes')
  const kc = loadKubeconfig(path)
  assert.deepEqual([kc.context, kc.cluster, kc.user, kc.namespace], ['prod', 'prod-cluster', 'admin', 'kubeedge'])
})

test('ManualMode kubeconfig: tokenFile relative to the file, insecure-skip-tls-verify, master overrides the server', () => {
  const path = file('kc2/config', `
current-context: c
clusters: [{name: k, cluster: {server: 'https://a:1', insecure-skip-tls-verify: true}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {tokenFile: tok}}]
`)
  const c = resolveKubeConnection(settings({ kubeConfig: path, master: 'b.example:8443' }), { env: {}, readFile: reader() })
  assert.equal(c.server, 'https://b.example:8443')
  assert.equal(c.description, `kubeconfig ${path} (context c, master https://b.example:8443)`)
  assert.equal(c.tokenFile, join(dir, 'kc2', 'tok'))
  assert.equal(c.tls.insecureSkipTLSVerify, true)
})

test('ManualMode with master only: that address and nothing else', () => {
  const c = resolveKubeConnection(settings({ master: 'http://10.0.0.1:8080/' }), { env: { KUBERNETES_PORT: 'x' }, readFile: reader() })
  assert.equal(c.mode, 'ManualMode')
  assert.equal(c.server, 'http://10.0.0.1:8080')
  assert.equal(c.description, 'master http://10.0.0.1:8080')
  assert.equal(c.token, undefined)
  assert.equal(c.tokenFile, undefined)
})

test('kubeconfig problems are KubeConfigErrors naming the file and what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['a: [', /is not valid YAML/],
    ['- 1', /is not a YAML mapping/],
    ['clusters: []', /has no current-context/],
    ['current-context: x\ncontexts: []', /current-context "x" is not in contexts/],
    ['current-context: x\ncontexts: [{name: x, context: {cluster: k, user: u}}]\nclusters: []', /cluster "k" of context "x" is not in clusters/],
    ['current-context: x\ncontexts: [{name: x, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://a"}}]\nusers: []', /user "u" of context "x" is not in users/],
    ['current-context: x\ncontexts: [{name: x, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://a"}}]\nusers: [{name: u, user: {exec: {command: aws}}}]', /exec or auth-provider plugin/],
    ['current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\nclusters: [{name: k, cluster: {server: "ftp://a"}}]', /must be an http/]
  ]
  for (const [i, [yaml, re]] of cases.entries()) {
    const path = file(`bad${i}.yaml`, yaml)
    assert.throws(() => resolveKubeConnection(settings({ kubeConfig: path }), { env: {}, readFile: reader() }),
      (err: unknown) => err instanceof KubeConfigError && err.message.includes(path) && re.test(err.message), yaml)
  }
  assert.throws(() => resolveKubeConnection(settings({ kubeConfig: join(dir, 'missing') }), { env: {}, readFile: reader() }),
    /kubeconfig: cannot read .*missing/)
})

test('a context without a user is anonymous', () => {
  const path = file('anon.yaml', 'current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\nclusters: [{name: k, cluster: {server: "10.0.0.1:6443"}}]')
  const c = resolveKubeConnection(settings({ kubeConfig: path }), { env: {}, readFile: reader() })
  assert.equal(c.server, 'http://10.0.0.1:6443')
  assert.equal(c.token, undefined)
})

test('normalizeServer: scheme by TLS, trailing slash dropped, path prefix kept', () => {
  assert.equal(normalizeServer('1.2.3.4:6443', true, 'x'), 'https://1.2.3.4:6443')
  assert.equal(normalizeServer('1.2.3.4:6443', false, 'x'), 'http://1.2.3.4:6443')
  assert.equal(normalizeServer('https://rancher/k8s/clusters/c-1/', false, 'x'), 'https://rancher/k8s/clusters/c-1')
  assert.throws(() => normalizeServer('http://[bad', false, 'kubeAPIConfig.master'), /kubeAPIConfig\.master: "http:\/\/\[bad" is not a valid URL/)
})
