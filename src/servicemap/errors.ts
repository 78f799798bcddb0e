import { EdgeMeshError } from '../errors.ts'

/** The persisted service map could not be read or written. */
export class StateFileError extends EdgeMeshError {
  override readonly name = 'StateFileError'
  readonly code = 'EM_ERR_SERVICEMAP_STATE_FILE'
  readonly file: string
  constructor (file: string, problem: string, options?: ErrorOptions) {
    super(`service map state file ${file} ${problem}`, options)
    this.file = file
  }
}

/** The standalone services file could not be read or parsed. */
export class StandaloneFileError extends EdgeMeshError {
  override readonly name = 'StandaloneFileError'
  readonly code = 'EM_ERR_SERVICEMAP_STANDALONE_FILE'
  readonly file: string
  constructor (file: string, problem: string, options?: ErrorOptions) {
    super(`standalone services file ${file} ${problem}`, options)
    this.file = file
  }
}
