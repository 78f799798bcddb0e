import { EdgeMeshError } from '../errors.ts'

/**
 * The mesh's pre-shared key file (`modules.edgeTunnel.psk.path`) is missing,
 * unreadable, empty, or holds a public PSK (the install guide's placeholder,
 * upstream's chart default). Every EdgeMesh node must hold the same secret PSK; the agent
 * does not start without it (set `psk.enable: false` to run an unprotected
 * tunnel on purpose).
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
 * The agent on the endpoint's node was reached but could not connect to the
 * endpoint (closed port, endpoint gone). No other path to that node is tried:
 * every path ends at the same agent, which would fail the same way.
 */
export class EndpointRefusedError extends EdgeMeshError {
  override readonly name = 'EndpointRefusedError'
  readonly code = 'EM_ERR_MESH_ENDPOINT_REFUSED'
  readonly nodeName: string
  constructor (nodeName: string, target: string, detail: string, options?: ErrorOptions) {
    super(`the agent on ${nodeName} could not reach ${target} (${detail})`, options)
    this.nodeName = nodeName
  }
}

/** No peer transport reached the agent on the endpoint's node. */
export class PeerUnreachableError extends EdgeMeshError {
  override readonly name = 'PeerUnreachableError'
  readonly code = 'EM_ERR_MESH_PEER_UNREACHABLE'
  readonly nodeName: string
  constructor (nodeName: string, detail: string, options?: ErrorOptions) {
    super(`node ${nodeName === '' ? '(unknown)' : nodeName} unreachable: ${detail}`, options)
    this.nodeName = nodeName
  }
}
