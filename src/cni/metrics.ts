/** Edge CNI metrics on an injected prom-client Registry (names `edgemesh_cni_*`); per-peer figures are in /status, not in labels. */
import { Counter } from 'prom-client'
import type { Registry } from 'prom-client'

export class CniMetrics {
  readonly packets: Counter<'direction'>
  readonly bytes: Counter<'direction'>
  readonly dropped: Counter<'reason'>
  readonly refused: Counter<'reason'>

  constructor (registry: Registry) {
    const registers = [registry]
    this.packets = new Counter({ name: 'edgemesh_cni_packets_total', help: 'Pod packets carried between nodes by the edge CNI, by direction: out (from this node\'s pods, read from edge_tun0) or in (from another node, written to it).', labelNames: ['direction'], registers })
    this.bytes = new Counter({ name: 'edgemesh_cni_bytes_total', help: 'Bytes of those packets, by direction.', labelNames: ['direction'], registers })
    this.refused = new Counter({ name: 'edgemesh_cni_refused_channels_total', help: 'Channels other agents opened to this node\'s edge CNI and it closed at once, by reason: no_block (the node, as its handshake named it, holds no pod block) or too_many (it holds 4 already).', labelNames: ['reason'], registers })
    this.dropped = new Counter({ name: 'edgemesh_cni_dropped_packets_total', help: 'Pod packets the edge CNI dropped, by reason: no_route (no node holds the destination), unreachable (no channel to its node), queue_full (the channel is backed up), not_ipv4, spoofed (from a peer, not from its pods to ours), bad_header (from a peer, with offload metadata the device would not give), device (the device refused it).', labelNames: ['reason'], registers })
  }
}
