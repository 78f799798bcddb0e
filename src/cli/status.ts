import { parseArgs } from 'node:util'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './io.ts'
import type { CommandIO } from './io.ts'
import type { StatusDocument } from '../observability/status.ts'

const HELP = `Usage: edgemesh status [--address HOST:PORT] [--json] [--log-level LEVEL]

Asks the agent on this node (its status server, 127.0.0.1:10551 by default;
commonConfig.statusAddress/statusPort) what it knows: readiness, services,
proxy rules, and the tunnel's peers with their path (direct or via a relay).
The gateway's status server is 127.0.0.1:10552 (--address): its listeners,
routes and the resources it rejected.

  --address HOST:PORT   another status server
  --json                print the raw JSON
  --log-level LEVEL     change the agent's log level now (debug, info, warn, error)
`

type Status = Partial<StatusDocument>

function table (rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? []
  return rows.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join('  ')).join('\n') + '\n'
}

function ago (ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`
}

/** The DATA column: the TLS data path a peer's latest proxied connection took, `-` when none. */
export function dataPathLabel (p: { dataPath?: string, dataPathVia?: string }): string {
  return p.dataPath === undefined ? '-' : p.dataPathVia !== undefined ? `relay via ${p.dataPathVia}` : p.dataPath
}

/** Renders /status for people. */
export function renderStatus (st: Status, now = Date.now()): string {
  const lines: string[] = []
  lines.push(`ready:     ${st.ready === true ? 'yes' : `no (waiting for ${(st.notReady ?? []).join(', ') || '?'})`}`)
  if (st.services !== undefined) lines.push(`services:  ${st.services.count} (${st.services.source}${st.services.synced ? '' : ', not synced'}${st.services.lastChange !== undefined ? `, last change ${ago(now - st.services.lastChange)} ago` : ''})`)
  const c = st.counters ?? {}
  if (Object.keys(c).length > 0) lines.push(`counters:  ${Object.entries(c).map(([k, v]) => `${k} ${v}`).join(', ')}`)
  if (st.proxy !== undefined) lines.push(`proxy:     ${st.proxy.servicePorts} service ports (${st.proxy.kernel} kernel DNAT, ${st.proxy.userspace} userspace)`)
  if (st.tunnel !== undefined) {
    lines.push(`tunnel:    ${st.tunnel.peerId ?? '(not started)'}${st.tunnel.relay === true ? ' (relay)' : ''}`)
    if (st.tunnel.error !== undefined) lines.push(`           not running: ${st.tunnel.error}`)
    const peers = st.tunnel.peers ?? []
    // PATH is the libp2p connection; DATA the TLS data path proxied TCP last took to that peer.
    lines.push('', table([['NODE', 'PEER-ID', 'PATH', 'RTT', 'DATA', 'SINCE', 'ADDRESS'],
      ...peers.map(p => [p.nodeName ?? '?', p.peerId, p.via !== undefined ? `relay via ${p.via}` : p.path, p.rttMs !== undefined ? `${p.rttMs}ms` : '-', dataPathLabel(p), ago(now - p.since), p.addresses[0] ?? ''])]).trimEnd())
  }
  if (st.cni !== undefined) lines.push(`cni:       ${st.cni.block !== undefined ? `pod block ${st.cni.block}${st.cni.side !== undefined ? ` (${st.cni.side}${st.cni.source === 'podCIDR' ? ', the node\'s spec.podCIDR' : ''})` : ''}` : `no pod block: ${st.cni.error ?? 'claiming'}`}`)
  if (st.cni?.routes !== undefined) lines.push(`           ${st.cni.routes.length} other blocks routed to edge_tun0`)
  for (const p of st.cni?.peers ?? []) lines.push(`           pods on ${p.nodeName}: out ${p.packetsOut} packets (${p.bytesOut} B), in ${p.packetsIn} (${p.bytesIn} B), dropped ${p.dropped}, channel ${p.channel}`)
  if (st.nat !== undefined) {
    const n = st.nat
    lines.push(`nat:       ${n.kind}: ${n.summary}`)
    if (n.mapped.length > 0) lines.push(`           seen as ${n.mapped.map(m => `${m.address} by ${m.relay}`).join(', ')}; candidates ${n.candidates.join(', ') || '-'}`)
    if (n.portMapping !== undefined) lines.push(`           port mapped by the router (${n.portMapping.protocol}): ${n.portMapping.address}`)
    for (const p of n.peers ?? []) {
      lines.push(`           ${p.nodeName}: ${p.path === 'direct' ? `direct over ${p.over === 'tcp' ? 'TCP' : 'UDP'} to ${p.address ?? '?'}${p.rttMs !== undefined ? `, rtt ${p.rttMs}ms` : ''}` : p.path === 'punching' ? 'punching' : `relayed: ${p.reason ?? '?'}`} (since ${ago(now - p.since)})`)
    }
  }
  if (st.gateway !== undefined) {
    const g = st.gateway
    lines.push('', table([['PORT', 'KIND', 'TLS', 'ADDRESSES', 'CONNS', 'ROUTES'],
      ...g.listeners.map(l => [String(l.port), l.kind, l.tls, l.failed !== undefined && l.failed.length > 0 ? `${l.addresses.join(',')} (not bound: ${l.failed.map(f => `${f.address} ${f.error}`).join(', ')})` : l.addresses.join(','), String(l.connections),
        (l.routes ?? []).map(r => `${r.domain}: ${r.routes.join(' ')}`).join('; ') || '-'])]).trimEnd())
    for (const [resource, why] of Object.entries(g.rejected)) lines.push(`rejected:  ${resource}: ${why}`)
    for (const p of g.problems) lines.push(`not served: ${p}`)
  }
  return lines.join('\n') + '\n'
}

export async function runStatus (argv: string[], io: CommandIO): Promise<number> {
  let values: { address?: string, json?: boolean, help?: boolean, 'log-level'?: string }
  try {
    values = parseArgs({ args: argv, options: { address: { type: 'string' }, json: { type: 'boolean' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (err) {
    io.stderr.write(`edgemesh status: ${(err as Error).message}\n\n${HELP}`)
    return EXIT_USAGE
  }
  if (values.help === true) { io.stdout.write(HELP); return EXIT_OK }
  const address = values.address ?? '127.0.0.1:10551'
  const level = values['log-level']
  if (level !== undefined) {
    try {
      const res = await fetch(`http://${address}/loglevel`, { method: 'POST', body: level, signal: AbortSignal.timeout(5000) })
      const text = await res.text()
      if (!res.ok) { io.stderr.write(`edgemesh status: ${text}`); return EXIT_USAGE }
      io.stdout.write(text)
      return EXIT_OK
    } catch (err) {
      io.stderr.write(`edgemesh status: no agent status at ${address} (${(err as Error).message})\n`)
      return EXIT_FAILURE
    }
  }
  let body: string
  try {
    const res = await fetch(`http://${address}/status`, { signal: AbortSignal.timeout(5000) })
    body = await res.text()
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${body.trim()}`)
  } catch (err) {
    io.stderr.write(`edgemesh status: no agent status at ${address} (${(err as Error).message}); is the agent running on this node?\n`)
    return EXIT_FAILURE
  }
  io.stdout.write(values.json === true ? body : renderStatus(JSON.parse(body) as Status))
  return EXIT_OK
}
