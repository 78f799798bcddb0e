/**
 * A real control plane for integration tests: etcd + kube-apiserver on
 * loopback with random ports, a throw-away CA, an admin token in
 * system:masters and RBAC on. No controller-manager: tests create
 * EndpointSlices themselves.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { setTimeout as delay } from 'node:timers/promises'
import { issueSigned, makeCa, openssl } from './certs.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

export function toolsBin (): string {
  return process.env.EDGEMESH_TOOLS_BIN ?? join(root, '.tools', 'bin')
}

/** True when etcd and kube-apiserver are built; integration tests skip otherwise. */
export function haveControlPlaneTools (): boolean {
  return existsSync(join(toolsBin(), 'etcd')) && existsSync(join(toolsBin(), 'kube-apiserver'))
}

export interface ObjectRef {
  apiVersion?: string
  kind?: string
  metadata: { name: string, namespace?: string }
}

export interface ApiResponse {
  status: number
  body: any
}

const CLUSTER_SCOPED = new Set(['Node', 'Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'GatewayClass'])
const PLURALS: Record<string, string> = { Endpoints: 'endpoints' }

/** `/api/v1/namespaces/ns/services` for an object (collection path, without the name). */
export function collectionPath (obj: ObjectRef): string {
  if (obj.apiVersion === undefined || obj.kind === undefined) throw new Error(`${obj.metadata.name}: apiVersion and kind are required`)
  const prefix = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`
  const lower = obj.kind.toLowerCase()
  const plural = PLURALS[obj.kind] ?? (/[^aeiou]y$/.test(lower) ? `${lower.slice(0, -1)}ies` : lower.endsWith('s') ? `${lower}es` : `${lower}s`)
  const ns = CLUSTER_SCOPED.has(obj.kind) ? '' : `/namespaces/${obj.metadata.namespace ?? 'default'}`
  return `${prefix}${ns}/${plural}`
}

/** Admin requests against one API server (plain https, no keep-alive: servers restart under us). */
export class AdminApi {
  readonly server: string
  readonly #token: string
  readonly #ca: string

  constructor (server: string, token: string, ca: string) {
    this.server = server
    this.#token = token
    this.#ca = ca
  }

  request (method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<ApiResponse> {
    const url = new URL(path, this.server)
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    return new Promise((resolve, reject) => {
      const req = https.request(url, {
        method,
        ca: this.#ca,
        agent: false,
        timeout: 15_000,
        headers: {
          Authorization: `Bearer ${this.#token}`,
          Accept: 'application/json',
          ...(payload !== undefined ? { 'Content-Type': contentType, 'Content-Length': String(payload.length) } : {})
        }
      }, res => {
        const parts: Buffer[] = []
        res.on('data', (c: Buffer) => parts.push(c))
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8')
          let parsed: unknown = text
          try { parsed = JSON.parse(text) } catch { /* plain text body */ }
          resolve({ status: res.statusCode ?? 0, body: parsed })
        })
        res.on('error', reject)
      })
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)))
      req.on('error', reject)
      req.end(payload)
    })
  }

  /** Server-side apply: creates or updates; returns the stored object. */
  async apply<O extends ObjectRef> (obj: O): Promise<any> {
    const path = `${collectionPath(obj)}/${obj.metadata.name}?fieldManager=edgemesh-test&force=true`
    const r = await this.request('PATCH', path, obj, 'application/apply-patch+yaml')
    if (r.status >= 300) throw new Error(`apply ${obj.kind} ${obj.metadata.name}: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body
  }

  /** Deletes; true if it existed. */
  async delete<O extends ObjectRef> (obj: O): Promise<boolean> {
    const r = await this.request('DELETE', `${collectionPath(obj)}/${obj.metadata.name}`)
    if (r.status === 404) return false
    if (r.status >= 300) throw new Error(`delete ${obj.kind} ${obj.metadata.name}: ${r.status} ${JSON.stringify(r.body)}`)
    return true
  }

  /** A bound token for a ServiceAccount (created if missing) via the TokenRequest API. */
  async createServiceAccountToken (namespace: string, name: string, expirationSeconds = 3600): Promise<string> {
    await this.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } })
    const r = await this.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds }
    })
    if (r.status >= 300) throw new Error(`token request ${namespace}/${name}: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body.status.token as string
  }
}

export interface ExtraApiServer {
  server: string
  api: AdminApi
  stop (): Promise<void>
}

export interface ControlPlane {
  server: string
  kubeconfigPath: string
  adminToken: string
  /** PEM of the CA that signs the serving certificate. */
  ca: string
  dir: string
  etcdUrl: string
  /** Wall time of startControlPlane() in ms. */
  startupMs: number
  api: AdminApi
  apply: AdminApi['apply']
  delete: AdminApi['delete']
  request: AdminApi['request']
  createServiceAccountToken: AdminApi['createServiceAccountToken']
  /** SIGTERM kube-apiserver and wait for it to exit; etcd keeps the data. */
  stopApiServer (): Promise<void>
  /** Starts kube-apiserver again on the same port; resolves when /readyz is ok. */
  startApiServer (): Promise<void>
  restartApiServer (): Promise<void>
  /** A second kube-apiserver on the same etcd (another port): lets a test write while the main one is down. */
  startExtraApiServer (): Promise<ExtraApiServer>
  /** A client certificate signed by the cluster CA (CN = user, O = each group). */
  createClientCert (user: string, groups?: string[]): { certFile: string, keyFile: string }
  /** Compacts etcd up to its current revision: older resourceVersions become 410 Gone. */
  compactEtcd (): Promise<number>
  stop (): Promise<void>
}

const live = new Set<{ procs: Set<ChildProcess>, dir: string }>()
let exitHookInstalled = false

function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  const cleanupAll = (): void => {
    for (const cp of live) {
      for (const p of cp.procs) { try { p.kill('SIGKILL') } catch { /* already gone */ } }
      try { rmSync(cp.dir, { recursive: true, force: true }) } catch { /* best effort */ }
    }
    live.clear()
  }
  process.on('exit', cleanupAll)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanupAll()
      process.kill(process.pid, sig)
    })
  }
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer()
    s.unref()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

function makeCerts (dir: string): void {
  makeCa(dir)
  issueSigned(dir, 'server', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n')
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key'])
  openssl(dir, ['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'])
}

function tail (file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

function waitExit (p: ChildProcess, ms: number): Promise<boolean> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(true)
  return new Promise(resolve => {
    const t = setTimeout(() => { p.off('exit', onExit); resolve(false) }, ms)
    const onExit = (): void => { clearTimeout(t); resolve(true) }
    p.once('exit', onExit)
  })
}

async function httpOk (url: string, opts: https.RequestOptions): Promise<string | undefined> {
  const mod = url.startsWith('https:') ? https : http
  return await new Promise(resolve => {
    const req = mod.get(url, { ...opts, agent: false, timeout: 2000 }, res => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () => resolve(res.statusCode === 200 ? Buffer.concat(parts).toString('utf8') : undefined))
      res.on('error', () => resolve(undefined))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
  })
}

async function waitFor (what: string, p: ChildProcess, log: string, probe: () => Promise<boolean>, deadlineMs: number): Promise<void> {
  const end = performance.now() + deadlineMs
  while (performance.now() < end) {
    if (p.exitCode !== null || p.signalCode !== null) {
      throw new Error(`${what} exited (${String(p.exitCode ?? p.signalCode)}) before becoming ready:\n${tail(log)}`)
    }
    if (await probe()) return
    await delay(50)
  }
  throw new Error(`${what} not ready within ${deadlineMs} ms:\n${tail(log)}`)
}

export interface ControlPlaneOptions {
  /**
   * Also run kube-controller-manager with these controllers (e.g. `daemonset`),
   * for tests that wait on a rollout as a user would.
   */
  controllers?: string[]
}

export async function startControlPlane (options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = performance.now()
  const bin = toolsBin()
  for (const b of ['etcd', 'kube-apiserver', ...(options.controllers !== undefined ? ['kube-controller-manager'] : [])]) {
    if (!existsSync(join(bin, b))) throw new Error(`${join(bin, b)} is missing: run bash scripts/tools/build-kube.sh`)
  }
  installExitHook()
  // tmpfs when available: etcd fsyncs every write.
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()
  const dir = mkdtempSync(join(base, 'edgemesh-cp-'))
  const procs = new Set<ChildProcess>()
  const entry = { procs, dir }
  live.add(entry)

  const spawnLogged = (name: string, cmd: string, args: string[]): { proc: ChildProcess, log: string } => {
    const log = join(dir, `${name}.log`)
    const fd = openSync(log, 'a')
    const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd] })
    closeSync(fd)
    procs.add(proc)
    proc.once('exit', () => procs.delete(proc))
    return { proc, log }
  }

  try {
    makeCerts(dir)
    const ca = readFileSync(join(dir, 'ca.crt'), 'utf8')
    const adminToken = randomBytes(16).toString('hex')
    writeFileSync(join(dir, 'tokens.csv'), `${adminToken},admin,admin-uid,system:masters\n`)

    const [clientPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()]
    const etcdUrl = `http://127.0.0.1:${clientPort}`
    const peerUrl = `http://127.0.0.1:${peerPort}`
    const etcd = spawnLogged('etcd', join(bin, 'etcd'), [
      '--name', 'default', '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `default=${peerUrl}`,
      '--logger', 'zap', '--log-level', 'warn',
      // One member: elect it at once instead of after the default 1 s.
      '--heartbeat-interval', '10', '--election-timeout', '100'
    ])
    await waitFor('etcd', etcd.proc, etcd.log, async () => (await httpOk(`${etcdUrl}/health`, {}))?.includes('true') === true, 20_000)

    const apiArgs = (port: number): string[] => [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${port}`,
      `--tls-cert-file=${join(dir, 'server.crt')}`, `--tls-private-key-file=${join(dir, 'server.key')}`,
      `--client-ca-file=${join(dir, 'ca.crt')}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      // As kubeadm and managed clusters run it: upstream's chart (and ours with upstream's image) asks for privileged.
      '--allow-privileged=true',
      '--service-cluster-ip-range=10.96.0.0/16',
      // Loopback is not a valid endpoint for the kubernetes Service; nothing needs it here.
      '--endpoint-reconciler-type=none',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      // Without it a graceful stop waits for open watches (ours) until we SIGKILL.
      '--shutdown-watch-termination-grace-period=1s'
    ]
    const server = `https://127.0.0.1:${apiPort}`
    const api = new AdminApi(server, adminToken, ca)
    const readyz = async (url: string): Promise<boolean> =>
      (await httpOk(`${url}/readyz`, { ca, headers: { Authorization: `Bearer ${adminToken}` } })) !== undefined

    let apiProc: ChildProcess | undefined
    let generation = 0
    const startApiServer = async (): Promise<void> => {
      if (apiProc !== undefined) throw new Error('kube-apiserver is already running')
      const s = spawnLogged(`kube-apiserver-${generation++}`, join(bin, 'kube-apiserver'), apiArgs(apiPort))
      apiProc = s.proc
      await waitFor('kube-apiserver', s.proc, s.log, () => readyz(server), 60_000)
    }
    const stopProc = async (p: ChildProcess): Promise<void> => {
      p.kill('SIGTERM')
      if (!await waitExit(p, 15_000)) {
        p.kill('SIGKILL')
        await waitExit(p, 5000)
      }
    }
    const stopApiServer = async (): Promise<void> => {
      const p = apiProc
      apiProc = undefined
      if (p !== undefined) await stopProc(p)
    }
    await startApiServer()
    // The API server creates default/kubernetes shortly after /readyz: wait, so
    // every test starts from the same cluster.
    await eventually('the default/kubernetes Service',
      async () => (await api.request('GET', '/api/v1/namespaces/default/services/kubernetes')).status === 200, 20_000, 50)

    const kubeconfigPath = join(dir, 'admin.kubeconfig')
    writeFileSync(kubeconfigPath, [
      'apiVersion: v1',
      'kind: Config',
      'current-context: admin@test',
      'clusters:',
      '- name: test',
      '  cluster:',
      `    server: ${server}`,
      `    certificate-authority-data: ${Buffer.from(ca).toString('base64')}`,
      'contexts:',
      '- name: admin@test',
      '  context: {cluster: test, user: admin}',
      'users:',
      '- name: admin',
      `  user: {token: ${adminToken}}`,
      ''
    ].join('\n'))
    if (options.controllers !== undefined) {
      const kcm = spawnLogged('kube-controller-manager', join(bin, 'kube-controller-manager'), [
        `--kubeconfig=${kubeconfigPath}`, `--controllers=${options.controllers.join(',')}`,
        '--leader-elect=false', '--secure-port=0', '--use-service-account-credentials=false'
      ])
      await delay(200)
      if (kcm.proc.exitCode !== null) throw new Error(`kube-controller-manager exited:\n${readFileSync(kcm.log, 'utf8').slice(-2000)}`)
    }

    let stopped = false
    const cp: ControlPlane = {
      server,
      kubeconfigPath,
      adminToken,
      ca,
      dir,
      etcdUrl,
      startupMs: Math.round(performance.now() - t0),
      api,
      apply: obj => api.apply(obj),
      delete: obj => api.delete(obj),
      request: (method, path, body, contentType) => api.request(method, path, body, contentType),
      createServiceAccountToken: (ns, name, exp) => api.createServiceAccountToken(ns, name, exp),
      stopApiServer,
      startApiServer,
      async restartApiServer () {
        await stopApiServer()
        await startApiServer()
      },
      async startExtraApiServer () {
        const port = await freePort()
        const s = spawnLogged(`kube-apiserver-extra-${port}`, join(bin, 'kube-apiserver'), apiArgs(port))
        const url = `https://127.0.0.1:${port}`
        try {
          await waitFor('extra kube-apiserver', s.proc, s.log, () => readyz(url), 60_000)
        } catch (err) {
          s.proc.kill('SIGKILL')
          throw err
        }
        return { server: url, api: new AdminApi(url, adminToken, ca), stop: () => stopProc(s.proc) }
      },
      createClientCert (user, groups = []) {
        const name = `client-${user.replace(/[^a-z0-9-]/gi, '_')}`
        const subj = `/CN=${user}${groups.map(g => `/O=${g}`).join('')}`
        issueSigned(dir, name, subj, 'extendedKeyUsage=clientAuth\n')
        return { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) }
      },
      async compactEtcd () {
        const status = await etcdPost(etcdUrl, '/v3/maintenance/status', {})
        const revision = Number(status.header.revision)
        await etcdPost(etcdUrl, '/v3/kv/compaction', { revision: String(revision), physical: true })
        return revision
      },
      async stop () {
        if (stopped) return
        stopped = true
        for (const p of [...procs]) p.kill('SIGKILL')
        await Promise.all([...procs].map(p => waitExit(p, 5000)))
        rmSync(dir, { recursive: true, force: true })
        live.delete(entry)
      }
    }
    return cp
  } catch (err) {
    for (const p of procs) p.kill('SIGKILL')
    await Promise.all([...procs].map(p => waitExit(p, 5000)))
    rmSync(dir, { recursive: true, force: true })
    live.delete(entry)
    throw err
  }
}

async function etcdPost (etcdUrl: string, path: string, body: unknown): Promise<any> {
  const payload = JSON.stringify(body)
  return await new Promise((resolve, reject) => {
    const req = http.request(`${etcdUrl}${path}`, { method: 'POST', agent: false, headers: { 'Content-Type': 'application/json' } }, res => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8')
        if (res.statusCode !== 200) reject(new Error(`etcd ${path}: ${res.statusCode ?? 0} ${text}`))
        else resolve(JSON.parse(text))
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** Polls `check` until it returns true; fails after `ms` with `what`. */
export async function eventually (what: string, check: () => boolean | Promise<boolean>, ms = 5000, every = 10): Promise<number> {
  const t0 = performance.now()
  const end = t0 + ms
  for (;;) {
    if (await check()) return performance.now() - t0
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for: ${what}`)
    await delay(every)
  }
}
