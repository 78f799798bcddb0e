/** NAT discovery metrics on an injected prom-client Registry (names `edgemesh_nat_*`). */
import { Counter, Gauge, Histogram } from 'prom-client'
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

/** Punched paths (`edgemesh_nat_punch*`, `edgemesh_nat_direct_links`). */
export class DirectPathMetrics {
  readonly punches: Counter<'result'>
  readonly punchSeconds: Histogram
  readonly links: Gauge
  readonly refused: Counter
  readonly rtt: Gauge<'peer'>
  readonly relayed: Gauge<'reason'>

  constructor (registry: Registry) {
    const registers = [registry]
    this.rtt = new Gauge({ name: 'edgemesh_nat_direct_rtt_seconds', help: 'Round-trip time of each peer\'s punched path, measured when it was proven (peers without one have no series).', labelNames: ['peer'], registers })
    this.relayed = new Gauge({ name: 'edgemesh_nat_relayed_peers', help: 'Peers reached through relays that have no punched path, by why: both_symmetric, udp_blocked, punch_failed, path_lost, other.', labelNames: ['reason'], registers })
    this.punches = new Counter({ name: 'edgemesh_nat_punches_total', help: 'Hole-punching attempts towards peers reached through a relay, by result: direct (plain probes), direct_birthday (many ports probed, one side symmetric) or failed (including pairs that cannot punch: both symmetric, UDP blocked).', labelNames: ['result'], registers })
    this.punchSeconds = new Histogram({ name: 'edgemesh_nat_punch_seconds', help: 'Time from the start of a successful punch to a path proven both ways.', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10], registers })
    this.links = new Gauge({ name: 'edgemesh_nat_direct_links', help: 'Peers with a proven direct UDP path: their new connections are UDX streams over it, not relayed.', registers })
    this.refused = new Counter({ name: 'edgemesh_nat_streams_refused_total', help: 'Stream opens on a direct path refused because the link had its maximum of streams.', registers })
  }
}
