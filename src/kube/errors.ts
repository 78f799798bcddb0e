import { EdgeMeshError } from '../errors.ts'

/** The kubeconfig, in-cluster or metaServer settings cannot be turned into a connection. */
export class KubeConfigError extends EdgeMeshError {
  override readonly name = 'KubeConfigError'
  readonly code = 'EM_ERR_KUBE_CONFIG'
  readonly source: string
  constructor (source: string, problem: string, options?: ErrorOptions) {
    super(`${source}: ${problem}`, options)
    this.source = source
  }
}

/** What was being done when the API server answered. */
export interface KubeRequestContext {
  verb: 'list' | 'watch' | 'get' | 'create' | 'update' | 'patch' | 'delete'
  /** Plural resource name, e.g. `endpointslices`; absent for raw paths. */
  resource?: string
  /** API group; '' for core. */
  group?: string
  namespace?: string
  path: string
  /** Human description of the server (`metaServer http://127.0.0.1:10550`). */
  server: string
}

function target (ctx: KubeRequestContext): string {
  if (ctx.resource === undefined) return `"${ctx.path}"`
  const scope = ctx.namespace !== undefined && ctx.namespace !== '' ? `namespace "${ctx.namespace}"` : 'cluster scope'
  return `resource "${ctx.resource}" in API group "${ctx.group ?? ''}" (${scope})`
}

/** 403: RBAC does not allow this verb on this resource. */
export class KubeForbiddenError extends EdgeMeshError {
  override readonly name = 'KubeForbiddenError'
  readonly code = 'EM_ERR_KUBE_FORBIDDEN'
  readonly verb: KubeRequestContext['verb']
  readonly resource: string | undefined
  readonly group: string | undefined
  readonly namespace: string | undefined
  /** The user the server saw, parsed from its message when present. */
  readonly user: string | undefined
  readonly serverMessage: string
  constructor (ctx: KubeRequestContext, serverMessage: string) {
    const user = /User "([^"]*)"/.exec(serverMessage)?.[1]
    const who = user !== undefined ? `user "${user}", ` : ''
    super(`forbidden: cannot ${ctx.verb} ${target(ctx)} — grant it in the ClusterRole (${who}server ${ctx.server})`)
    this.verb = ctx.verb
    this.resource = ctx.resource
    this.group = ctx.group
    this.namespace = ctx.namespace
    this.user = user
    this.serverMessage = serverMessage
  }
}

/** 401: the credentials were rejected (expired token, wrong CA for the client cert). */
export class KubeUnauthorizedError extends EdgeMeshError {
  override readonly name = 'KubeUnauthorizedError'
  readonly code = 'EM_ERR_KUBE_UNAUTHORIZED'
  constructor (ctx: KubeRequestContext, serverMessage: string) {
    super(`unauthorized: ${ctx.server} rejected the credentials for ${ctx.verb} ${target(ctx)}: ${serverMessage}`)
  }
}

/** 410 (HTTP or watch ERROR event): the resourceVersion is compacted away; relist. */
export class KubeResourceExpiredError extends EdgeMeshError {
  override readonly name = 'KubeResourceExpiredError'
  readonly code = 'EM_ERR_KUBE_RESOURCE_EXPIRED'
  constructor (ctx: KubeRequestContext, serverMessage: string) {
    super(`resource version expired while trying to ${ctx.verb} ${target(ctx)}: ${serverMessage}`)
  }
}

/** 404 on a collection: the server does not serve this resource type (no EndpointSlices, no Istio CRDs). */
export class KubeResourceNotFoundError extends EdgeMeshError {
  override readonly name = 'KubeResourceNotFoundError'
  readonly code = 'EM_ERR_KUBE_RESOURCE_NOT_FOUND'
  readonly resource: string | undefined
  readonly group: string | undefined
  constructor (ctx: KubeRequestContext, serverMessage: string) {
    super(`${ctx.server} does not serve ${target(ctx)} (404 on ${ctx.path}): ${serverMessage}`)
    this.resource = ctx.resource
    this.group = ctx.group
  }
}

/** 404 on a single object or raw path. */
export class KubeNotFoundError extends EdgeMeshError {
  override readonly name = 'KubeNotFoundError'
  readonly code = 'EM_ERR_KUBE_NOT_FOUND'
  readonly path: string
  constructor (ctx: KubeRequestContext, serverMessage: string) {
    super(`not found: ${ctx.path} on ${ctx.server}: ${serverMessage}`)
    this.path = ctx.path
  }
}

/** No HTTP answer: connection refused or reset, DNS, TLS handshake. */
export class KubeUnreachableError extends EdgeMeshError {
  override readonly name = 'KubeUnreachableError'
  readonly code = 'EM_ERR_KUBE_UNREACHABLE'
  readonly server: string
  constructor (server: string, what: string, options?: ErrorOptions) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : ''
    super(`${what} the Kubernetes API server ${server}${reason}`, options)
    this.server = server
  }
}

/** The client-side deadline of a request passed. */
export class KubeTimeoutError extends EdgeMeshError {
  override readonly name = 'KubeTimeoutError'
  readonly code = 'EM_ERR_KUBE_TIMEOUT'
  readonly timeoutMs: number
  constructor (ctx: KubeRequestContext, timeoutMs: number) {
    super(`${ctx.verb} ${target(ctx)} on ${ctx.server} did not finish within ${timeoutMs} ms`)
    this.timeoutMs = timeoutMs
  }
}

/** Any other failed answer: 429, 5xx, a body that is not JSON. */
export class KubeRequestError extends EdgeMeshError {
  override readonly name = 'KubeRequestError'
  readonly code = 'EM_ERR_KUBE_REQUEST'
  /** HTTP status or watch ERROR code; 0 when the body was unusable. */
  readonly status: number
  /** From a Retry-After header, when the server sent one. */
  readonly retryAfterMs: number | undefined
  constructor (ctx: KubeRequestContext, status: number, serverMessage: string, retryAfterMs?: number, options?: ErrorOptions) {
    super(`${ctx.verb} ${target(ctx)} on ${ctx.server} failed${status !== 0 ? ` with ${status}` : ''}: ${serverMessage}`, options)
    this.status = status
    this.retryAfterMs = retryAfterMs
  }
}

/** waitForSync() was pending when the informer stopped. */
export class KubeInformerStoppedError extends EdgeMeshError {
  override readonly name = 'KubeInformerStoppedError'
  readonly code = 'EM_ERR_KUBE_INFORMER_STOPPED'
  constructor (informer: string) {
    super(`informer ${informer} stopped before its first list completed`)
  }
}
