import { EdgeMeshError } from '../errors.ts'

/**
 * The libp2p tunnel could not open a stream to a peer agent (directly or
 * through any relay), or the tunnel is not running.
 */
export class TunnelDialError extends EdgeMeshError {
  override readonly name = 'TunnelDialError'
  readonly code = 'EM_ERR_TUNNEL_DIAL'
  readonly nodeName: string
  constructor (nodeName: string, detail: string, options?: ErrorOptions) {
    super(`tunnel to node ${nodeName === '' ? '(unknown)' : nodeName}: ${detail}`, options)
    this.nodeName = nodeName
  }
}

/**
 * The secure identity mode (`edgeTunnel.identity: secure`) cannot use its
 * files in the state directory: the node's private key (missing ones are
 * created; one readable by others is refused) or the PeerID pins.
 */
export class TunnelIdentityError extends EdgeMeshError {
  override readonly name = 'TunnelIdentityError'
  readonly code = 'EM_ERR_TUNNEL_IDENTITY'
  readonly file: string
  constructor (file: string, detail: string, options?: ErrorOptions) {
    super(`tunnel identity file ${file}: ${detail}`, options)
    this.file = file
  }
}
