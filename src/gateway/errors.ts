import { EdgeMeshError } from '../errors.ts'

/**
 * An Istio Gateway or VirtualService the gateway cannot use: the message names
 * the object and the field. That object is left out; every other route keeps
 * serving.
 */
export class GatewayResourceError extends EdgeMeshError {
  override readonly name = 'GatewayResourceError'
  readonly code = 'EM_ERR_GATEWAY_RESOURCE'
  readonly resource: string
  readonly field: string
  constructor (resource: string, field: string, why: string) {
    super(`${resource}: ${field} ${why}`)
    this.resource = resource
    this.field = field
  }
}

/**
 * A Gateway server's TLS credential cannot be used: the Secret named by
 * `credentialName` is missing, is not `kubernetes.io/tls`, or holds a key and
 * certificate that do not load. The listener refuses TLS handshakes until the
 * Secret is fixed; a rotation to a bad Secret keeps the last good one.
 */
export class GatewayCredentialError extends EdgeMeshError {
  override readonly name = 'GatewayCredentialError'
  readonly code = 'EM_ERR_GATEWAY_CREDENTIAL'
  readonly secret: string
  /** What is wrong with it, without the Secret's name. */
  readonly why: string
  constructor (secret: string, why: string, options?: ErrorOptions) {
    super(`Secret ${secret}: ${why}`, options)
    this.secret = secret
    this.why = why
  }
}

/** Two Gateway servers ask for one port with protocols that cannot share it; the older server keeps it. */
export class GatewayPortConflictError extends EdgeMeshError {
  override readonly name = 'GatewayPortConflictError'
  readonly code = 'EM_ERR_GATEWAY_PORT_CONFLICT'
  readonly port: number
  constructor (port: number, kept: string, dropped: string) {
    super(`port ${port}: ${dropped} cannot share it with ${kept}; ${dropped} is not served on it`)
    this.port = port
  }
}
