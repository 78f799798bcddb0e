/** How a proxied connection reaches an endpoint anywhere in the mesh. */
export type { DatagramChannel, DialOptions, DialTarget, EndpointDialer, PeerChannels, PeerTarget, PeerTransport } from './endpoint-dialer.ts'
export { earlyAnswer, markEarly } from './early.ts'
export { DirectDialer } from './direct-dialer.ts'
export type { DirectDialerInit } from './direct-dialer.ts'
export { PeerDialer, RoutingDialer } from './peer-dialer.ts'
export { serveTarget, SERVE_CONNECT_TIMEOUT_MS } from './serve-target.ts'
export { EndpointRefusedError, PeerUnreachableError, TunnelPskError } from './errors.ts'
export { derivePnetKey, generatePsk, pskFileExposure, publicPskReason, readPnetKey, PUBLIC_PSKS } from './psk.ts'
