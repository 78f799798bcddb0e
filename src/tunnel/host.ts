/**
 * Builds the libp2p host as upstream's go-libp2p host is built: TCP, pnet
 * from the PSK, Noise, Yamux, circuit relay v2 (the relay service on relay
 * nodes). Loaded on start, not at import: nodes without the tunnel never pay
 * for libp2p.
 */
import { isIP } from 'node:net'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { CopiedStreams } from '../net/buffer-reclaimer.ts'
import { inCidr } from '../net/ipv4.ts'
import { createProtector } from './pnet.ts'
import type { PnetImplementation } from './pnet.ts'
import { loadSodium } from './sodium.ts'

/** Streams a new connection may carry before our side has finished upgrading it (see the muxer options). */
const EARLY_STREAMS = 1024
/** Least time libp2p's connection monitor gives a ping before it drops the connection. */
const PING_TIMEOUT_MS = 30_000
/** Inbound connections in their upgrade (pnet, Noise, yamux) at once; each may take libp2p's 10 s (slow edge links). */
const MAX_PENDING_UPGRADES = 512

export interface HostInit {
  privateKey: PrivateKey
  /** Addresses to listen on, relay circuits included. */
  listen: string[]
  /** Addresses announced beside the listening ones (a relay's advertiseAddress). */
  announce: string[]
  /** The 32-byte pnet key; undefined runs without a private network. */
  pnetKey: Uint8Array | undefined
  pnet?: PnetImplementation | undefined
  /** Largest Yamux receive window per stream. */
  maxStreamWindowBytes: number
  /** Runs the relay service (relay nodes). */
  relay?: { maxReservations: number, reservationTtlMs: number } | undefined
  /** Upstream's dual DHT services. */
  dht: boolean
  /** The edge CNI's pod CIDRs: an interface address there (edge_tun0's) is a pod block's, never announced as the node's. */
  podCidrs?: readonly string[] | undefined
}

export interface Host {
  node: Libp2p
  multiaddr: (addr: string) => Multiaddr
  /** `native`, `wasm` or `off`. */
  pnet: string
}

/** `/ip4|ip6|dns4/<host>/tcp/<port>` for a relay's configured address. */
export function tcpAddr (a: { host: string, port: number }): string {
  return `/${isIP(a.host) === 6 ? 'ip6' : isIP(a.host) === 4 ? 'ip4' : 'dns4'}/${a.host}/tcp/${a.port}`
}

export async function createHost (init: HostInit, copied: CopiedStreams | undefined): Promise<Host> {
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }, relayMod, { identify }, { multiaddr }] = await Promise.all([
    import('libp2p'), import('@libp2p/tcp'), import('@chainsafe/libp2p-noise'), import('@chainsafe/libp2p-yamux'),
    import('@libp2p/circuit-relay-v2'), import('@libp2p/identify'), import('@multiformats/multiaddr')
  ])
  const protector = init.pnetKey !== undefined ? await createProtector(init.pnetKey, init.pnet, copied) : undefined
  const window = Math.max(256 * 1024, init.maxStreamWindowBytes)
  const noiseCrypto = await loadNoiseCrypto()
  const services: Record<string, unknown> = { identify: identify() }
  if (init.dht) Object.assign(services, await (await import('./dht.ts')).dhtServices())
  if (init.relay !== undefined) {
    services.relay = relayMod.circuitRelayServer({
      reservations: {
        maxReservations: init.relay.maxReservations,
        reservationTtl: init.relay.reservationTtlMs,
        // Upstream relays without a per-circuit limit; libp2p's default (2 min, 128 KiB) cuts transfers.
        applyDefaultLimit: false
      }
    })
  }
  const node = await createLibp2p({
    privateKey: init.privateKey,
    addresses: {
      listen: init.listen,
      ...(init.announce.length > 0 ? { appendAnnounce: init.announce } : {}),
      ...((init.podCidrs?.length ?? 0) > 0 ? { announceFilter: (addrs: Multiaddr[]) => addrs.filter(a => !inPodCidr(a, init.podCidrs ?? [])) } : {})
    },
    transports: [tcp(), relayMod.circuitRelayTransport({ reservationCompletionTimeout: 10_000, reservationConcurrency: 4 })],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux({
      // Streams the far side opens while our end of a new connection is still being upgraded wait as
      // "early streams"; beyond 10 (the default) yamux aborts the whole connection. A burst of proxied
      // connections to a node we just connected to (50 at once through a relay) did exactly that.
      maxEarlyStreams: EARLY_STREAMS,
      streamOptions: { maxStreamWindowSize: window, maxReadBufferLength: 2 * window }
    })],
    ...(protector !== undefined ? { connectionProtector: protector.protector } : {}),
    connectionGater: { denyDialMultiaddr: () => false },
    // libp2p pings every connection every 10 s and, by default, aborts one whose ping takes over 5 s. On a
    // relayed connection carrying many bulk streams the ping queues behind their data for longer, and the
    // abort cut them all (iperf3 -P 50 through a relay). A dead connection still fails its pings.
    connectionMonitor: { pingTimeout: { minTimeout: PING_TIMEOUT_MS } },
    // libp2p holds at most 10 connections in their upgrade by default, for up to 10 s each: 10 silent TCP
    // connections from anywhere locked every peer out of a relay. Room for a relay's fleet reconnecting at
    // once; a silent flood stays bounded (libp2p admits 5 new connections a second per address).
    connectionManager: { maxIncomingPendingConnections: MAX_PENDING_UPGRADES },
    // A relay that is down at start must not stop the agent: reservations are retried.
    transportManager: { faultTolerance: 1 /* FaultTolerance.NO_FATAL */ },
    services: services as never,
    start: false
  })
  return { node, multiaddr, pnet: protector?.implementation ?? 'off' }
}

/** Noise with OpenSSL's HKDF, and its cipher on libsodium where the addon loads. */
async function loadNoiseCrypto (): Promise<ICryptoInterface> {
  const [sodium, { nativeNoiseCrypto }, { defaultCrypto }] = await Promise.all([loadSodium(), import('./noise-crypto.ts'), import('@chainsafe/libp2p-noise/crypto')])
  return nativeNoiseCrypto(defaultCrypto, sodium)
}

/** Whether `addr` is an /ip4 address inside one of `cidrs`. */
function inPodCidr (addr: Multiaddr, cidrs: readonly string[]): boolean {
  const ip = /^\/ip4\/([\d.]+)\//.exec(addr.toString())?.[1]
  return ip !== undefined && cidrs.some(c => inCidr(ip, c))
}
