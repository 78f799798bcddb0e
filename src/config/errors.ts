import { EdgeMeshError } from '../errors.ts'

export interface ConfigIssue {
  /** Dotted path as written in the file, e.g. `modules.edgeTunnel.transport`. */
  path: string
  expected: string
  given: string
}

/** Issues listed in the message; a broken file can have thousands. */
const MAX_SHOWN = 20

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
    const shown = issues.slice(0, MAX_SHOWN).map(i => `  ${i.path}: expected ${i.expected}, got ${i.given}`)
    if (issues.length > MAX_SHOWN) shown.push(`  … and ${issues.length - MAX_SHOWN} more`)
    super(`invalid config ${file}:\n` + shown.join('\n'))
    this.file = file
    this.issues = issues
  }
}
