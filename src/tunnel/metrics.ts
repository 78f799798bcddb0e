import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import type { StatusPeer } from '../observability/status.ts'

/** A connected peer as `edgemesh status` shows it. */
export type PeerInfo = StatusPeer

/** Tunnel metrics (`edgemesh_tunnel_*`); the peer gauges are computed when scraped. */
export class TunnelMetrics {
  readonly streams: Counter<'direction' | 'result'>
  readonly peers: Gauge<'path'>
  readonly reservations: Gauge
  readonly handshakeFailures: Counter<'reason'>

  constructor (registry: Registry, peers: () => PeerInfo[] = () => []) {
    const registers = [registry]
    this.handshakeFailures = new Counter({ name: 'edgemesh_tunnel_relay_dial_failures_total', help: 'Failed connections to relays, by reason: psk (TCP connects, the handshake fails: another PSK, or not an EdgeMesh peer) or unreachable.', labelNames: ['reason'], registers })
    this.streams = new Counter({ name: 'edgemesh_tunnel_streams_total', help: 'Proxy streams on libp2p (/libp2p/tunnel-proxy/1.0.0), by direction (inbound/outbound) and result. Connections on the TLS data path are counted in edgemesh_datapath_connections_total.', labelNames: ['direction', 'result'], registers })
    this.peers = new Gauge({
      name: 'edgemesh_tunnel_peers',
      help: 'Connected peers by path (direct or relay).',
      labelNames: ['path'],
      registers,
      collect () {
        const list = peers()
        this.set({ path: 'direct' }, list.filter(p => p.path === 'direct').length)
        this.set({ path: 'relay' }, list.filter(p => p.path === 'relay').length)
      }
    })
    this.reservations = new Gauge({
      name: 'edgemesh_tunnel_relay_reservations',
      help: 'Relays this node holds a reservation on (reachable through them).',
      registers,
      collect () {
        this.set(new Set(peers().filter(p => p.reserved === true).map(p => p.peerId)).size)
      }
    })
  }
}
