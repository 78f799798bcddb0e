import { EdgeMeshError } from '../errors.ts'

/**
 * A CNI request the plugin cannot serve. `cniCode` is the CNI spec's error
 * code (1 incompatible version, 4 invalid environment, 6 undecodable
 * configuration, 7 invalid network configuration, 11 try again later, 100+
 * ours), written to stdout in the spec's error format with the message.
 */
export class CniError extends EdgeMeshError {
  override readonly name = 'CniError'
  readonly code = 'EM_ERR_CNI'
  readonly cniCode: number
  readonly details: string | undefined
  constructor (cniCode: number, message: string, details?: string, options?: ErrorOptions) {
    super(message, options)
    this.cniCode = cniCode
    this.details = details
  }
}

/** CNI spec error codes. */
export const CNI_INCOMPATIBLE_VERSION = 1
export const CNI_INVALID_ENV = 4
export const CNI_IO_FAILURE = 5
export const CNI_DECODE_FAILURE = 6
export const CNI_INVALID_CONFIG = 7
export const CNI_TRY_AGAIN_LATER = 11
/** Ours: the address range has no free address. */
export const CNI_RANGE_FULL = 100
/** Ours: a link, address or route could not be set up. */
export const CNI_NETWORK_SETUP = 101
/** Ours: a pod CIDR overlaps a block another node holds. */
export const CNI_BLOCK_CONFLICT = 102
