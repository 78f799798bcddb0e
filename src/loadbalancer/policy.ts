/**
 * The load-balancing policy contract. A policy instance belongs to one
 * service port and keeps whatever state it needs (cursor, ring, affinity
 * table) between picks; it never does I/O.
 */
import type { Endpoint } from '../servicemap/types.ts'

/** What the proxy knows about a new connection when it picks an endpoint. */
export interface PickContext {
  /** Client address as the proxy saw it (after un-NAT). */
  clientIP?: string
  clientPort?: number
  /** Reads a request header (case-insensitive); only for HTTP-aware policies, after peeking the request. */
  header?: (name: string) => string | undefined
  /** Reads a request cookie; only for HTTP-aware policies. */
  cookie?: (name: string) => string | undefined
  /** Endpoints already tried for this connection, by `endpointKey` (`ip:port`, `[ip]:port` for IPv6). */
  exclude?: ReadonlySet<string>
}

/**
 * Picks one endpoint of a service port.
 *
 * Contract: `endpoints` holds only the *candidates*: ready endpoints that
 * serve this port (the caller filters; `LoadBalancer` does it for you). Their
 * order carries no meaning and may change between calls. `pick` returns
 * `undefined` only when no candidate is left after `ctx.exclude`. It never
 * throws and never blocks.
 */
export interface LbPolicy {
  /** Stable policy name for logs and metrics: ROUND_ROBIN, RANDOM, CONSISTENT_HASH, CLIENT_IP. */
  readonly name: string
  pick (endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined
}

/** Injected time source in milliseconds (`performance.now` in production). */
export type Clock = () => number

/** Injected randomness in [0, 1) (`Math.random` in production). */
export type RandomSource = () => number

/** The endpoint's target port for the service port named `portName`, if it serves it. */
export function targetPort (ep: Endpoint, portName: string): number | undefined {
  for (const p of ep.ports) if (p.name === portName) return p.port
  return undefined
}

/** `ip:port` (`[ip]:port` for IPv6) of an endpoint for one service port: the identity used by `exclude`, cursors and affinity. */
export function endpointKey (ep: Endpoint, portName: string): string {
  const port = targetPort(ep, portName)
  const host = ep.ip.includes(':') ? `[${ep.ip}]` : ep.ip
  return port === undefined ? host : `${host}:${port}`
}

/** Candidates of `endpoints` that are not in `exclude`. Returns the input itself when nothing is excluded. */
export function withoutExcluded (endpoints: readonly Endpoint[], portName: string, exclude: ReadonlySet<string> | undefined): readonly Endpoint[] {
  if (exclude === undefined || exclude.size === 0) return endpoints
  return endpoints.filter(ep => !exclude.has(endpointKey(ep, portName)))
}
