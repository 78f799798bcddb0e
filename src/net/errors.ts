import { EdgeMeshError } from '../errors.ts'

/** A host networking command (`ip …`) failed; the message names the command and what it printed. */
export class HostCommandError extends EdgeMeshError {
  override readonly name = 'HostCommandError'
  readonly code = 'EM_ERR_NET_HOST_COMMAND'
  readonly command: string
  readonly stderr: string
  constructor (argv: readonly string[], detail: string, stderr = '', options?: ErrorOptions) {
    const command = argv.join(' ')
    super(`\`${command}\` failed: ${detail}${stderr.trim() === '' ? '' : ` (${stderr.trim()})`}`, options)
    this.command = command
    this.stderr = stderr
  }
}

/** A TCP connect did not complete within its deadline (an endpoint, a peer agent or a relay that does not answer). */
export class ConnectTimeoutError extends EdgeMeshError {
  override readonly name = 'ConnectTimeoutError'
  readonly code = 'EM_ERR_NET_CONNECT_TIMEOUT'
  constructor (host: string, port: number, timeoutMs: number) {
    super(`connect ${host}:${port} timed out after ${timeoutMs} ms`)
  }
}
