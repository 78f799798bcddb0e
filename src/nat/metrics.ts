/** NAT discovery metrics on an injected prom-client Registry (names `edgemesh_nat_*`). */
import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'

export class NatMetrics {
  readonly reflected: Counter<'result'>
  readonly kind: Gauge<'kind'>
  readonly checks: Counter<'result'>

  constructor (registry: Registry) {
    const registers = [registry]
    this.reflected = new Counter({ name: 'edgemesh_nat_reflector_requests_total', help: 'STUN binding requests to a relay\'s reflector (UDP listenPort), by result: answered, malformed, size (shorter than the answer, or too long) or rate (over a cap).', labelNames: ['result'], registers })
    this.kind = new Gauge({ name: 'edgemesh_nat_kind', help: 'This node\'s NAT as the last check found it: 1 for the kind (public, cone, symmetric, unknown, udp-blocked), 0 for the others.', labelNames: ['kind'], registers })
    this.checks = new Counter({ name: 'edgemesh_nat_checks_total', help: 'NAT checks against the relays\' reflectors, by result: the kind found.', labelNames: ['result'], registers })
  }
}
