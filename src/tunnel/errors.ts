import { EdgeMeshError } from '../errors.ts'

/**
 * The tunnel's pre-shared key file (`modules.edgeTunnel.psk.path`) is
 * missing, unreadable or empty. Every EdgeMesh node must hold the same PSK;
 * the agent does not start without it (set `psk.enable: false` to run an
 * unprotected tunnel on purpose).
 */
export class TunnelPskError extends EdgeMeshError {
  override readonly name = 'TunnelPskError'
  readonly code = 'EM_ERR_TUNNEL_PSK'
  readonly file: string
  constructor (file: string, detail: string, options?: ErrorOptions) {
    super(`tunnel PSK file ${file} cannot be used: ${detail} (generate one with \`edgemesh psk generate\`)`, options)
    this.file = file
  }
}

/**
 * A proxied connection through the tunnel failed: the peer agent could not
 * be reached (directly or through any relay), or it could not reach the
 * endpoint it was asked for.
 */
export class TunnelDialError extends EdgeMeshError {
  override readonly name = 'TunnelDialError'
  readonly code = 'EM_ERR_TUNNEL_DIAL'
  readonly nodeName: string
  /** The far agent answered FAILED (as opposed to not being reached at all). */
  readonly refused: boolean
  constructor (nodeName: string, detail: string, options?: ErrorOptions & { refused?: boolean }) {
    super(`tunnel to node ${nodeName === '' ? '(unknown)' : nodeName}: ${detail}`, options)
    this.nodeName = nodeName
    this.refused = options?.refused === true
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
