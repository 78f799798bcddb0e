import { EdgeMeshError } from '../errors.ts'

/** The DNS listener could not bind its address (port taken, address not on any interface, no permission). */
export class DnsBindError extends EdgeMeshError {
  override readonly name = 'DnsBindError'
  readonly code = 'EM_ERR_DNS_BIND'
  readonly address: string
  readonly port: number
  readonly protocol: 'udp' | 'tcp'
  constructor (protocol: 'udp' | 'tcp', address: string, port: number, options?: ErrorOptions) {
    const sys = (options?.cause as NodeJS.ErrnoException | undefined)?.code
    const hint = sys === 'EADDRNOTAVAIL'
      ? ' (the address is on no interface: is the bridge device up?)'
      : sys === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : sys === 'EADDRINUSE' ? ' (another DNS server is listening there)' : ''
    super(`cannot listen for DNS on ${protocol} ${address}:${port}: ${sys ?? (options?.cause as Error | undefined)?.message ?? 'unknown error'}${hint}`, options)
    this.address = address
    this.port = port
    this.protocol = protocol
  }
}

/** No upstream resolver is usable: the resolv.conf names none (or only this server), and none is configured. */
export class DnsNoUpstreamError extends EdgeMeshError {
  override readonly name = 'DnsNoUpstreamError'
  readonly code = 'EM_ERR_DNS_NO_UPSTREAM'
  constructor (detail: string, options?: ErrorOptions) {
    super(`no usable upstream DNS server: ${detail}`, options)
  }
}

/** One upstream exchange did not produce a usable answer in time. */
export class DnsUpstreamTimeoutError extends EdgeMeshError {
  override readonly name = 'DnsUpstreamTimeoutError'
  readonly code = 'EM_ERR_DNS_UPSTREAM_TIMEOUT'
  readonly upstream: string
  constructor (upstream: string, protocol: 'udp' | 'tcp', timeoutMs: number, options?: ErrorOptions) {
    super(`DNS upstream timed out (upstream: ${upstream}/${protocol}, timeout: ${timeoutMs} ms)`, options)
    this.upstream = upstream
  }
}

/** An upstream answered with something that is not a reply to our question, or failed at the socket level. */
export class DnsUpstreamError extends EdgeMeshError {
  override readonly name = 'DnsUpstreamError'
  readonly code = 'EM_ERR_DNS_UPSTREAM'
  readonly upstream: string
  constructor (upstream: string, problem: string, options?: ErrorOptions) {
    super(`DNS upstream ${upstream}: ${problem}`, options)
    this.upstream = upstream
  }
}

/** The DNS configuration cannot work (bad listen address, bad upstream server entry). */
export class DnsConfigError extends EdgeMeshError {
  override readonly name = 'DnsConfigError'
  readonly code = 'EM_ERR_DNS_CONFIG'
  constructor (problem: string, options?: ErrorOptions) {
    super(`DNS configuration: ${problem}`, options)
  }
}
