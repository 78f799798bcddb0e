/**
 * Decides how the agent reaches the API server, following upstream EdgeMesh:
 * master/kubeConfig → ManualMode; EdgeMode → the edgecore metaServer;
 * CloudMode → in-cluster service account. Unlike upstream we never write a
 * kubeconfig file: everything is resolved in memory.
 */
import { readFileSync } from 'node:fs'
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { KubeConfigError } from './errors.ts'

export type RunningMode = 'EdgeMode' | 'CloudMode' | 'ManualMode'

/** Structurally the `kubeAPIConfig` section of the agent/gateway config. */
export interface KubeAPISettings {
  master: string
  kubeConfig: string
  contentType: string
  qps: number
  burst: number
  mode?: RunningMode
  metaServer: {
    server: string
    security: {
      requireAuthorization: boolean
      insecureSkipTLSVerify: boolean
      tlsCaFile: string
      tlsCertFile: string
      tlsPrivateKeyFile: string
    }
  }
}

export interface KubeTLS {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
  insecureSkipTLSVerify: boolean
  /** SNI / name to verify instead of the host in `server`. */
  serverName?: string
}

/** Everything a client needs; plain data, safe to log except the credentials. */
export interface KubeConnection {
  mode: RunningMode
  /** Base URL without trailing slash; may carry a path prefix. */
  server: string
  /** For logs: `metaServer http://127.0.0.1:10550`, `kubeconfig /path (context x)`. */
  description: string
  tls: KubeTLS
  /** Static bearer token. */
  token?: string
  /** Bearer token file, re-read periodically by the client (projected tokens rotate). */
  tokenFile?: string
  basicAuth?: { username: string, password: string }
  qps: number
  burst: number
  /**
   * The configured content type. Informational only: the client always
   * speaks JSON, which every API server and the metaServer serve, and which
   * spares us a protobuf decoder.
   */
  requestedContentType: string
}

export type FileReader = (path: string) => Buffer

export interface ResolveOptions {
  env?: Record<string, string | undefined>
  readFile?: FileReader
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount'
export const SERVICE_ACCOUNT_TOKEN = `${SERVICE_ACCOUNT_DIR}/token`
export const SERVICE_ACCOUNT_CA = `${SERVICE_ACCOUNT_DIR}/ca.crt`

/** Upstream: master or kubeConfig → ManualMode; else the configured mode; else KUBERNETES_PORT → CloudMode. */
export function resolveRunningMode (settings: KubeAPISettings, env: Record<string, string | undefined>): RunningMode {
  if (settings.master !== '' || settings.kubeConfig !== '') return 'ManualMode'
  return settings.mode ?? (env.KUBERNETES_PORT !== undefined ? 'CloudMode' : 'EdgeMode')
}

export function resolveKubeConnection (settings: KubeAPISettings, options: ResolveOptions = {}): KubeConnection {
  const env = options.env ?? process.env
  const readFile = options.readFile ?? ((p: string) => readFileSync(p))
  const mode = resolveRunningMode(settings, env)
  const common = { mode, qps: settings.qps, burst: settings.burst, requestedContentType: settings.contentType }

  if (mode === 'ManualMode' && settings.kubeConfig !== '') {
    const kc = loadKubeconfig(settings.kubeConfig, readFile)
    const hasTLS = kc.tls.ca !== undefined || kc.tls.cert !== undefined || kc.tls.insecureSkipTLSVerify
    const server = settings.master !== '' ? normalizeServer(settings.master, hasTLS, 'kubeAPIConfig.master') : kc.server
    const override = settings.master !== '' ? `, master ${server}` : ''
    return {
      ...common,
      server,
      description: `kubeconfig ${settings.kubeConfig} (context ${kc.context}${override})`,
      tls: kc.tls,
      token: kc.token,
      tokenFile: kc.tokenFile,
      basicAuth: kc.basicAuth
    }
  }
  if (mode === 'ManualMode' && settings.master !== '') {
    // client-go BuildConfigFromFlags(master, ""): the address and nothing else.
    const server = normalizeServer(settings.master, false, 'kubeAPIConfig.master')
    return { ...common, server, description: `master ${server}`, tls: { insecureSkipTLSVerify: false } }
  }
  if (mode === 'EdgeMode') return { ...common, ...metaServerConnection(settings.metaServer, readFile) }
  // CloudMode, or ManualMode forced without an address (upstream falls back to in-cluster too).
  return { ...common, ...inClusterConnection(env, readFile) }
}

type Endpoint = Pick<KubeConnection, 'server' | 'description' | 'tls' | 'token' | 'tokenFile'>

function metaServerConnection (ms: KubeAPISettings['metaServer'], readFile: FileReader): Endpoint {
  const sec = ms.security
  if (!sec.requireAuthorization) {
    const server = normalizeServer(ms.server, false, 'kubeAPIConfig.metaServer.server')
    return { server, description: `metaServer ${server}`, tls: { insecureSkipTLSVerify: false } }
  }
  // KubeEdge ≥ 1.12: same address over TLS, as upstream's generated kubeconfig.
  const server = normalizeServer(ms.server.replace(/^http:\/\//, 'https://'), true, 'kubeAPIConfig.metaServer.server')
  const tls: KubeTLS = sec.insecureSkipTLSVerify
    ? { insecureSkipTLSVerify: true }
    : {
        insecureSkipTLSVerify: false,
        ca: readRequired(readFile, sec.tlsCaFile, 'metaServer.security.tlsCaFile'),
        cert: readRequired(readFile, sec.tlsCertFile, 'metaServer.security.tlsCertFile'),
        key: readRequired(readFile, sec.tlsPrivateKeyFile, 'metaServer.security.tlsPrivateKeyFile')
      }
  const hasToken = readOptional(readFile, SERVICE_ACCOUNT_TOKEN) !== undefined
  const parts = [sec.insecureSkipTLSVerify ? 'TLS unverified' : 'TLS', ...(hasToken ? ['service account token'] : [])]
  return {
    server,
    description: `metaServer ${server} (${parts.join(', ')})`,
    tls,
    tokenFile: hasToken ? SERVICE_ACCOUNT_TOKEN : undefined
  }
}

function inClusterConnection (env: Record<string, string | undefined>, readFile: FileReader): Endpoint {
  const host = env.KUBERNETES_SERVICE_HOST
  const port = env.KUBERNETES_SERVICE_PORT
  if (host === undefined || host === '' || port === undefined || port === '') {
    throw new KubeConfigError('in-cluster config', 'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (or set kubeAPIConfig.master / kubeConfig)')
  }
  // Fails early like client-go when the token is not mounted.
  readRequired(readFile, SERVICE_ACCOUNT_TOKEN, 'in-cluster service account token')
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`
  return {
    server,
    description: `in-cluster ${server}`,
    // A missing ca.crt falls back to the system roots, as client-go does.
    tls: { insecureSkipTLSVerify: false, ca: readOptional(readFile, SERVICE_ACCOUNT_CA) },
    tokenFile: SERVICE_ACCOUNT_TOKEN
  }
}

export interface KubeconfigTarget {
  context: string
  cluster: string
  user: string
  namespace?: string
  server: string
  tls: KubeTLS
  token?: string
  tokenFile?: string
  basicAuth?: { username: string, password: string }
}

/** Parses a kubeconfig file and resolves its current context (files relative to the kubeconfig). */
export function loadKubeconfig (file: string, readFile: FileReader = p => readFileSync(p)): KubeconfigTarget {
  const text = readRequired(readFile, file, 'kubeconfig').toString('utf8')
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err) {
    throw new KubeConfigError(`kubeconfig ${file}`, 'is not valid YAML', { cause: err })
  }
  return parseKubeconfig(doc, file, readFile)
}

export function parseKubeconfig (doc: unknown, file: string, readFile: FileReader = p => readFileSync(p)): KubeconfigTarget {
  const where = `kubeconfig ${file}`
  if (!isRecord(doc)) throw new KubeConfigError(where, 'is not a YAML mapping')
  const base = dirname(file)
  const contextName = str(doc['current-context'])
  if (contextName === undefined) throw new KubeConfigError(where, 'has no current-context')
  const context = findNamed(doc.contexts, contextName, 'context')
  if (context === undefined) throw new KubeConfigError(where, `current-context "${contextName}" is not in contexts`)
  const clusterName = str(context.cluster) ?? ''
  const cluster = findNamed(doc.clusters, clusterName, 'cluster')
  if (cluster === undefined) throw new KubeConfigError(where, `cluster "${clusterName}" of context "${contextName}" is not in clusters`)
  const userName = str(context.user) ?? ''
  // A context without a user is valid: anonymous access.
  const user = userName !== '' ? findNamed(doc.users, userName, 'user') : {}
  if (user === undefined) throw new KubeConfigError(where, `user "${userName}" of context "${contextName}" is not in users`)

  const fileOrData = (obj: Record<string, unknown>, key: string): Buffer | undefined => {
    const data = str(obj[`${key}-data`])
    if (data !== undefined) return Buffer.from(data, 'base64')
    const path = str(obj[key])
    if (path === undefined) return undefined
    return readRequired(readFile, isAbsolute(path) ? path : resolvePath(base, path), `${where}: ${key}`)
  }

  if (user.exec !== undefined || user['auth-provider'] !== undefined) {
    throw new KubeConfigError(where, `user "${userName}" uses an exec or auth-provider plugin, which is not supported; use a token, tokenFile or client certificate`)
  }
  const tls: KubeTLS = {
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
    ca: fileOrData(cluster, 'certificate-authority'),
    cert: fileOrData(user, 'client-certificate'),
    key: fileOrData(user, 'client-key'),
    serverName: str(cluster['tls-server-name'])
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new KubeConfigError(where, `user "${userName}" has a client certificate without a key or the reverse`)
  }
  const rawServer = str(cluster.server)
  if (rawServer === undefined) throw new KubeConfigError(where, `cluster "${clusterName}" has no server`)
  const hasTLS = tls.ca !== undefined || tls.cert !== undefined || tls.insecureSkipTLSVerify
  const tokenFile = str(user.tokenFile)
  const username = str(user.username)
  return {
    context: contextName,
    cluster: clusterName,
    user: userName,
    namespace: str(context.namespace),
    server: normalizeServer(rawServer, hasTLS, `${where}: cluster "${clusterName}" server`),
    tls,
    token: str(user.token),
    tokenFile: tokenFile === undefined ? undefined : isAbsolute(tokenFile) ? tokenFile : resolvePath(base, tokenFile),
    basicAuth: username !== undefined ? { username, password: str(user.password) ?? '' } : undefined
  }
}

/** client-go DefaultServerURL: no scheme → https when TLS is configured, else http. */
export function normalizeServer (raw: string, tls: boolean, what: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `${tls ? 'https' : 'http'}://${raw}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch (err) {
    throw new KubeConfigError(what, `"${raw}" is not a valid URL`, { cause: err })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new KubeConfigError(what, `"${raw}" must be an http:// or https:// URL`)
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`
}

function readRequired (readFile: FileReader, path: string, what: string): Buffer {
  try {
    return readFile(path)
  } catch (err) {
    throw new KubeConfigError(what, `cannot read ${path}`, { cause: err })
  }
}

function readOptional (readFile: FileReader, path: string): Buffer | undefined {
  try {
    return readFile(path)
  } catch {
    return undefined
  }
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function str (v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined
}

function findNamed (list: unknown, name: string, field: string): Record<string, unknown> | undefined {
  if (!Array.isArray(list)) return undefined
  for (const entry of list as unknown[]) {
    if (isRecord(entry) && entry.name === name) {
      const inner = entry[field]
      return isRecord(inner) ? inner : {}
    }
  }
  return undefined
}
