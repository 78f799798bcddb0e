import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'

/** Data path metrics (`edgemesh_datapath_*`). */
export class DataPathMetrics {
  readonly connections: Counter<'path' | 'result'>
  readonly joins: Counter
  readonly parked: Gauge
  readonly splices: Gauge
  readonly relayParked: Gauge
  readonly rejected: Counter<'reason'>
  readonly pool: Counter<'result'>
  readonly reused: Counter

  constructor (registry: Registry) {
    const registers = [registry]
    this.connections = new Counter({ name: 'edgemesh_datapath_connections_total', help: 'Proxied connections over the TLS data path, by path (direct: TCP; punched: a UDX stream over a punched UDP path; relay) and result.', labelNames: ['path', 'result'], registers })
    this.parked = new Gauge({ name: 'edgemesh_datapath_parked_connections', help: 'Idle connections this node keeps parked on relays.', registers })
    this.splices = new Gauge({ name: 'edgemesh_datapath_relay_splices', help: 'Connections this relay is splicing now.', registers })
    this.joins = new Counter({ name: 'edgemesh_datapath_relay_joins_total', help: 'Connections this relay spliced to a parked one (each a connection between two nodes that could not reach each other directly).', registers })
    this.relayParked = new Gauge({ name: 'edgemesh_datapath_relay_parked_connections', help: 'Connections other nodes keep parked on this relay.', registers })
    this.rejected = new Counter({ name: 'edgemesh_datapath_rejected_connections_total', help: 'Inbound connections closed before they proved the PSK, by reason (handshake_timeout, eof_before_handshake, handshake_failed, too_many_pending, unknown_protocol).', labelNames: ['reason'], registers })
    this.pool = new Counter({ name: 'edgemesh_datapath_pool_takes_total', help: 'Connections dialed over the data path, by whether an idle handshaken one was ready (hit) or a handshake had to run first (miss).', labelNames: ['result'], registers })
    this.reused = new Counter({ name: 'edgemesh_datapath_connections_reused_total', help: 'Connections given back to the pool after a proxied connection on them ended cleanly (framed; no handshake for the next one).', registers })
  }
}
