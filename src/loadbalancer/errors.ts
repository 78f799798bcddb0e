import { EdgeMeshError } from '../errors.ts'

/**
 * A DestinationRule asks for a load-balancing policy this agent cannot apply
 * (`simple: LEAST_REQUEST`, `LEAST_CONN`, `PASSTHROUGH`, or a consistent-hash key
 * other than `httpHeaderName`, `httpCookie` and `useSourceIp`). The rule is not
 * applied: its services use round robin, or another rule that binds to them.
 */
export class LbUnsupportedPolicyError extends EdgeMeshError {
  override readonly name = 'LbUnsupportedPolicyError'
  readonly code = 'EM_ERR_LB_UNSUPPORTED_POLICY'
  /** `namespace/name` of the DestinationRule. */
  readonly rule: string
  constructor (rule: string, what: string, options?: ErrorOptions) {
    super(`DestinationRule ${rule}: unsupported load-balancer policy ${what} (supported: simple ROUND_ROBIN or RANDOM, consistentHash by httpHeaderName, httpCookie or useSourceIp)`, options)
    this.rule = rule
  }
}

/**
 * A DestinationRule object is malformed: missing metadata or `spec.host`, a
 * field of the wrong type, a `portLevelSettings` entry without a valid port
 * number, a bad cookie TTL, or two load-balancer choices where one is allowed.
 * The rule is not applied.
 */
export class LbInvalidRuleError extends EdgeMeshError {
  override readonly name = 'LbInvalidRuleError'
  readonly code = 'EM_ERR_LB_INVALID_RULE'
  /** `namespace/name` of the DestinationRule, or '' when the metadata itself is missing. */
  readonly rule: string
  /** Dotted path of the offending field, e.g. `spec.trafficPolicy.portLevelSettings[1].port.number`. */
  readonly field: string
  constructor (rule: string, field: string, problem: string, options?: ErrorOptions) {
    super(`DestinationRule ${rule === '' ? '(unnamed)' : rule}: ${field}: ${problem}`, options)
    this.rule = rule
    this.field = field
  }
}
