import { EdgeMeshError } from '../errors.ts'

/**
 * Installing the interception rules failed: `nft` is missing, the agent lacks
 * CAP_NET_ADMIN, or the kernel refused the transaction. The message carries
 * what `nft` printed. ClusterIP traffic is not intercepted until it succeeds.
 */
export class InterceptionError extends EdgeMeshError {
  override readonly name = 'InterceptionError'
  readonly code = 'EM_ERR_PROXY_INTERCEPTION'
  readonly stderr: string
  constructor (message: string, stderr: string, options?: ErrorOptions) {
    super(`${message}${stderr.trim() === '' ? '' : `: ${stderr.trim().split('\n').slice(0, 6).join(' | ')}`}`, options)
    this.stderr = stderr
  }
}

/**
 * A proxied connection could not reach any endpoint of its service port: none
 * is ready, or every attempt failed. The client connection is reset.
 */
export class NoEndpointError extends EdgeMeshError {
  override readonly name = 'NoEndpointError'
  readonly code = 'EM_ERR_PROXY_NO_ENDPOINT'
  readonly service: string
  constructor (service: string, detail: string, options?: ErrorOptions) {
    super(`${service}: ${detail}`, options)
    this.service = service
  }
}

/**
 * A SOCKS5 client sent a handshake the proxy cannot read: a version other than
 * 5, an unknown address type or an empty domain name. The connection is closed.
 */
export class Socks5ProtocolError extends EdgeMeshError {
  override readonly name = 'Socks5ProtocolError'
  readonly code = 'EM_ERR_PROXY_SOCKS5_PROTOCOL'
  constructor (detail: string) {
    super(`SOCKS5 handshake: ${detail}`)
  }
}
