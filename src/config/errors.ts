import { EdgeMeshError } from '../errors.ts'

export interface ConfigIssue {
  /** Dotted path as written in the file, e.g. `modules.edgeTunnel.transport`. */
  path: string
  expected: string
  given: string
}

/** The config file is missing, unreadable or not YAML. */
export class ConfigFileError extends EdgeMeshError {
  override readonly name = 'ConfigFileError'
  readonly code = 'EM_ERR_CONFIG_FILE'
  readonly file: string
  constructor (file: string, problem: string, options?: ErrorOptions) {
    super(`config file ${file} ${problem}`, options)
    this.file = file
  }
}

/** The config parsed but holds invalid values; `issues` lists every one. */
export class ConfigInvalidError extends EdgeMeshError {
  override readonly name = 'ConfigInvalidError'
  readonly code = 'EM_ERR_CONFIG_INVALID'
  readonly file: string
  readonly issues: readonly ConfigIssue[]
  constructor (file: string, issues: readonly ConfigIssue[]) {
    super(`invalid config ${file}:\n` + issues.map(i => `  ${i.path}: expected ${i.expected}, got ${i.given}`).join('\n'))
    this.file = file
    this.issues = issues
  }
}
