/**
 * Base of every error the agent raises on purpose. `code` is stable and listed
 * in docs/errors.md; `name` is the class name. Callers branch on `code`, never
 * on message text.
 */
export abstract class EdgeMeshError extends Error {
  abstract readonly code: `EM_ERR_${string}`
}

/** A component failed to start; the group rolled back what had started. */
export class ComponentStartError extends EdgeMeshError {
  override readonly name = 'ComponentStartError'
  readonly code = 'EM_ERR_COMPONENT_START'
  readonly component: string
  constructor (component: string, options?: ErrorOptions) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : ''
    super(`component "${component}" failed to start${reason}`, options)
    this.component = component
  }
}

/** What a component's start failed with, without the group's ComponentStartError around it. */
export function startFailure (err: unknown): unknown {
  return err instanceof ComponentStartError && err.cause instanceof Error ? err.cause : err
}

/** A required environment variable is missing (e.g. NODE_NAME). */
export class MissingEnvError extends EdgeMeshError {
  override readonly name = 'MissingEnvError'
  readonly code = 'EM_ERR_MISSING_ENV'
  readonly variable: string
  constructor (variable: string, why: string) {
    super(`environment variable ${variable} is required (${why})`)
    this.variable = variable
  }
}
