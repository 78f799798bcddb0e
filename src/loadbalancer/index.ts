/**
 * Load balancing for the ClusterIP proxy: policies (round robin, random,
 * ClientIP affinity, consistent hash), DestinationRule parsing, and the
 * per-service-port `LoadBalancer`. Pure: no sockets, no timers.
 * @packageDocumentation
 */
export { LoadBalancer, DEFAULT_MAX_ATTEMPTS } from './load-balancer.ts'
export type { EffectivePolicy, LoadBalancerInit, ServicePortKey } from './load-balancer.ts'
export { parseDestinationRule, hostToService, policyForPort, specNeedsHttp } from './destination-rule.ts'
export type { DestinationRule, HashKeySpec, LbPolicySpec, ParseRuleOptions } from './destination-rule.ts'
export { endpointKey, targetPort } from './policy.ts'
export type { Clock, LbPolicy, PickContext, RandomSource } from './policy.ts'
export { RoundRobinPolicy } from './round-robin.ts'
export { RandomPolicy } from './random.ts'
export { SessionAffinityPolicy, DEFAULT_AFFINITY_TIMEOUT_SECONDS } from './session-affinity.ts'
export { ConsistentHashPolicy, HashRing, DEFAULT_RING_CONFIG, ringMemberName } from './consistent-hash.ts'
export type { ConsistentHashInit, HashKeySource, RingConfig } from './consistent-hash.ts'
export { LbInvalidRuleError, LbUnsupportedPolicyError } from './errors.ts'
