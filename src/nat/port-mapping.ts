/**
 * A port mapping on the node's router for the punching socket: NAT-PMP
 * (which PCP servers answer too) to the default gateway, then UPnP-IGD, as
 * upstream asks for one (go-libp2p's NATPortMap) and Tailscale does. With
 * it, packets from anyone to the router's public address and that port reach
 * the node, so a node behind a symmetric NAT can still be punched: its
 * peers probe the mapped port, and it only answers (its own probes would
 * open other mappings on its NAT; plan.ts).
 *
 * `@achingbrain/nat-port-mapper` speaks both protocols; it is loaded only when
 * a mapping is asked for. The mapping is renewed at half its lifetime and
 * removed on stop. Only UDP is mapped: TCP punching (a UDP-blocked site) does
 * not use it.
 */
import { readFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import type { Logger } from '../observability/logger.ts'

export interface PortMappingStatus {
  /** The router's public port mapped to the node's socket. */
  port: number
  protocol: 'NAT-PMP' | 'UPnP'
  since: number
}

export interface PortMapperInit {
  /** How long each protocol gets to answer (a router on the LAN answers in milliseconds). @default 1000 */
  timeoutMs?: number
  /** The lifetime asked for; renewed at half of it. @default 7200 */
  lifetimeSeconds?: number
  /** The default gateway and the node's address towards it. @default from /proc/net/route */
  route?: () => { gateway: string, localAddress: string } | undefined
}

interface Gateway {
  map: (internalPort: number, internalHost: string, options: Record<string, unknown>) => Promise<{ externalPort: number }>
  stop: (options?: { signal?: AbortSignal }) => Promise<void>
}

export class PortMapper {
  readonly #log: Logger
  readonly #init: Required<PortMapperInit>
  /** Removes the mapping and closes the client. */
  #remove: (() => Promise<void>) | undefined
  #status: PortMappingStatus | undefined
  #renew: NodeJS.Timeout | undefined
  #localPort = 0
  #stopped = false

  constructor (deps: { logger: Logger }, init: PortMapperInit = {}) {
    this.#log = deps.logger
    this.#init = { timeoutMs: 1000, lifetimeSeconds: 7200, route: defaultRoute, ...init }
  }

  current (): PortMappingStatus | undefined {
    return this.#status
  }

  /** Maps UDP `localPort` on the router; undefined when no router answers either protocol. */
  async map (localPort: number): Promise<PortMappingStatus | undefined> {
    const route = this.#init.route()
    if (route === undefined || this.#stopped) return undefined
    this.#localPort = localPort
    const lib = await import('@achingbrain/nat-port-mapper')
    const options = { protocol: 'udp', externalPort: localPort, ttl: this.#init.lifetimeSeconds, autoRefresh: false, description: 'edgemesh punching' }
    const errors: string[] = []
    const pmp = lib.pmpNat(route.gateway, { autoRefresh: false }) as unknown as Gateway
    try {
      const m = await pmp.map(localPort, route.localAddress, { ...options, signal: AbortSignal.timeout(this.#init.timeoutMs) })
      // NAT-PMP deletes with a lifetime of 0 (the package's unmap deletes the TCP mapping only).
      this.#remove = async () => {
        await pmp.map(localPort, '', { ...options, ttl: 0, signal: AbortSignal.timeout(this.#init.timeoutMs) }).catch(() => {})
        await pmp.stop({ signal: AbortSignal.timeout(this.#init.timeoutMs) }).catch(() => {})
      }
      return this.#mapped(pmp, m.externalPort, 'NAT-PMP')
    } catch (err) {
      errors.push(`NAT-PMP: ${(err as Error).message}`)
      await pmp.stop().catch(() => {})
    }
    try {
      for await (const g of lib.upnpNat({ autoRefresh: false }).findGateways({ signal: AbortSignal.timeout(this.#init.timeoutMs) })) {
        const gateway = g as unknown as Gateway
        try {
          const m = await gateway.map(localPort, route.localAddress, { ...options, signal: AbortSignal.timeout(this.#init.timeoutMs) })
          // Stopping a UPnP gateway deletes its mappings.
          this.#remove = async () => { await gateway.stop({ signal: AbortSignal.timeout(this.#init.timeoutMs) }).catch(() => {}) }
          return this.#mapped(gateway, m.externalPort, 'UPnP')
        } catch (err) {
          errors.push(`UPnP: ${(err as Error).message}`)
          await gateway.stop().catch(() => {})
        }
      }
    } catch (err) {
      if (errors.length < 2) errors.push(`UPnP: ${(err as Error).message}`)
    }
    this.#log.debug('no port mapping from the router', { gateway: route.gateway, errors })
    return undefined
  }

  #mapped (gateway: Gateway, port: number, protocol: PortMappingStatus['protocol']): PortMappingStatus {
    this.#status = { port, protocol, since: Date.now() }
    this.#log.info('router mapped a port to the punching socket', { protocol, port })
    clearTimeout(this.#renew)
    this.#renew = setTimeout(() => { this.#again(gateway, protocol) }, this.#init.lifetimeSeconds * 500)
    this.#renew.unref()
    return this.#status
  }

  #again (gateway: Gateway, protocol: PortMappingStatus['protocol']): void {
    const route = this.#init.route()
    if (this.#stopped || route === undefined) return
    gateway.map(this.#localPort, route.localAddress, { protocol: 'udp', externalPort: this.#status?.port ?? this.#localPort, ttl: this.#init.lifetimeSeconds, autoRefresh: false, signal: AbortSignal.timeout(this.#init.timeoutMs) })
      .then(m => { this.#mapped(gateway, m.externalPort, protocol) }, (err: Error) => {
        // The router forgot or refuses it: peers are told of no mapping, and the next check tries again.
        this.#log.warn('port mapping could not be renewed', { protocol, err: err.message })
        this.#status = undefined
      })
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#renew)
    const remove = this.#remove
    this.#remove = undefined
    this.#status = undefined
    await remove?.()
  }
}

/** The IPv4 default gateway from /proc/net/route, and this host's address on that interface. */
export function defaultRoute (table = readRouteTable(), interfaces = networkInterfaces()): { gateway: string, localAddress: string } | undefined {
  for (const line of table.split('\n').slice(1)) {
    const [iface, destination, gateway, flags] = line.trim().split(/\s+/)
    // RTF_UP | RTF_GATEWAY, destination 0.0.0.0
    if (iface === undefined || destination !== '00000000' || gateway === undefined || (Number.parseInt(flags ?? '0', 16) & 3) !== 3) continue
    const n = Number.parseInt(gateway, 16)
    // Little-endian hex: 0101A8C0 is 192.168.1.1.
    const address = [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.')
    const local = interfaces[iface]?.find(a => a.family === 'IPv4' && !a.internal)?.address
    if (local !== undefined) return { gateway: address, localAddress: local }
  }
  return undefined
}

function readRouteTable (): string {
  try {
    return readFileSync('/proc/net/route', 'utf8')
  } catch {
    return ''
  }
}
