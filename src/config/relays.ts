/**
 * `relayNodes` as the code uses them: where to dial each relay. Parsed here
 * once for the agent, the config watcher and `edgemesh doctor`.
 */
import { isIP } from 'node:net'

export interface RelayEndpoint {
  nodeName: string
  /** `advertiseAddress` × `listenPort` (upstream's rule), or the port an address names (`host:port`, EdgeMesh-TS). */
  addresses: Array<{ host: string, port: number }>
}

/** `ip`, `host` or `host:port` → where to dial a relay. */
export function relayAddress (address: string, listenPort: number): { host: string, port: number } {
  const m = /^(.*[^:]):(\d{1,5})$/.exec(address)
  return m !== null && isIP(address) === 0 ? { host: m[1] as string, port: Number(m[2]) } : { host: address, port: listenPort }
}

export function relayEndpoints (relayNodes: ReadonlyArray<{ nodeName: string, advertiseAddress: readonly string[] }>, listenPort: number): RelayEndpoint[] {
  return relayNodes.map(r => ({ nodeName: r.nodeName, addresses: r.advertiseAddress.map(a => relayAddress(a, listenPort)) }))
}
