/**
 * The rendezvous of two agents that punch (direct-paths.ts), over the
 * data path's relayed `nat-punch` channel: JSON lines, at most 4 KiB each.
 *
 *   initiator → { link, nat, candidates, public[, tcp] }
 *   answerer  → { nat, candidates, public[, tcp] } or { error }
 *   initiator → { tcp }                        (TCP chosen, not sent before)
 *   initiator → { use: nonce, rttMs } or { failed: true }
 *   answerer  → { ok: true } or { error }
 *
 * `tcp` is a node's public TCP endpoint for one local port (TcpMapping).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Duplex } from 'node:stream'
import type { NatReport } from './discovery.ts'
import type { PeerNat, TcpMapping } from './plan.ts'
import type { UdxAddress } from './udx.ts'
import { ipv4ToNumber, parseIpv4Endpoint } from '../net/ipv4.ts'

/**
 * The controlling side (the initiator, as in ICE) waits for an answer to one
 * of its probes and names that probe; the other side takes the path that
 * probe came over. Each deciding alone could pick different pairs of
 * mappings when several worked (birthday probing opens many).
 */
export async function agree<T extends { nonce: number, rttMs: number }> (
  attempt: { proven: Promise<T | undefined>, answered: (nonce: number) => Omit<T, 'rttMs'> | undefined },
  channel: Duplex, lines: LineReader, controlling: boolean, timeoutMs: number, tried: () => string
): Promise<Omit<T, 'rttMs'> & { rttMs: number }> {
  if (controlling) {
    const path = await Promise.race([attempt.proven, delay(timeoutMs)])
    channel.write(`${JSON.stringify(path === undefined ? { failed: true } : { use: path.nonce, rttMs: path.rttMs })}\n`)
    if (path === undefined) throw new Error(`no probe answered within ${timeoutMs} ms (${tried()})`)
    const word = await lines.next(2000)
    if (word.ok !== true) throw new Error(`the peer did not take the path: ${String(word.error ?? 'no reason')}`)
    return path
  }
  const word = await lines.next(timeoutMs + 2000)
  const path = typeof word.use === 'number' ? attempt.answered(word.use) : undefined
  channel.write(`${JSON.stringify(path === undefined ? { error: 'no such probe answered here' } : { ok: true })}\n`)
  if (path === undefined) throw new Error(word.failed === true ? `no probe answered within ${timeoutMs} ms` : 'the peer named a probe not answered here')
  return { ...path, rttMs: typeof word.rttMs === 'number' ? word.rttMs : 0 }
}

export function tcpLine (m: TcpMapping): Record<string, unknown> {
  return { localPort: m.localPort, public: `${m.public.host}:${m.public.port}`, preserved: m.preserved }
}

export function parseTcp (v: unknown): TcpMapping {
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>
  const at = endpoint(o.public)
  const localPort = Number(o.localPort)
  if (at === undefined || !(localPort > 0 && localPort < 65_536)) throw new Error('the peer sent no TCP endpoint')
  return { localPort, public: at, preserved: o.preserved === true }
}

/** What one side tells the other: its NAT, its candidates, and the port its router mapped (probed first). */
export function describe (r: NatReport & { routerMapping?: UdxAddress | undefined }): Record<string, unknown> {
  const publicHosts = [...new Set(r.mapped.map(m => m.address.slice(0, m.address.lastIndexOf(':'))))]
  const mapping = r.routerMapping === undefined ? undefined : `${r.routerMapping.host}:${r.routerMapping.port}`
  return {
    nat: { kind: r.kind, portPreserved: r.portPreserved ?? false, filtering: r.filtering },
    candidates: mapping === undefined ? r.candidates : [mapping, ...r.candidates.filter(c => c !== mapping)],
    public: publicHosts,
    ...(mapping === undefined ? {} : { portMapping: mapping })
  }
}

export function parsePeerNat (line: Record<string, unknown>): PeerNat {
  const nat = (typeof line.nat === 'object' && line.nat !== null ? line.nat : {}) as Record<string, unknown>
  const kinds = ['public', 'cone', 'symmetric', 'unknown', 'udp-blocked'] as const
  const kind = kinds.find(k => k === nat.kind) ?? 'unknown'
  const candidates = (Array.isArray(line.candidates) ? line.candidates : []).slice(0, 16).flatMap(c => endpoint(c) ?? [])
  const publicHosts = (Array.isArray(line.public) ? line.public : []).slice(0, 4).filter((h): h is string => typeof h === 'string' && ipv4ToNumber(h) !== undefined)
  return { kind, portPreserved: nat.portPreserved === true, filtering: nat.filtering === 'port-independent' ? 'port-independent' : 'port-dependent', candidates, public: publicHosts, routerMapping: endpoint(line.portMapping) }
}

/** `ip:port` as an address, or undefined for anything else. */
function endpoint (v: unknown): UdxAddress | undefined {
  return typeof v === 'string' ? parseIpv4Endpoint(v) : undefined
}

export interface LineReader { next: (timeoutMs: number) => Promise<Record<string, unknown>> }

/** JSON lines from a channel, at most 4 KiB each. */
export function lineReader (channel: Duplex): LineReader {
  let buffered = ''
  const lines: string[] = []
  const waiting: Array<(err?: Error) => void> = []
  const wake = (err?: Error): void => { for (const w of waiting.splice(0)) w(err) }
  channel.setEncoding('utf8')
  channel.on('data', (chunk: string) => {
    buffered += chunk
    for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) { lines.push(buffered.slice(0, at)); buffered = buffered.slice(at + 1) }
    if (buffered.length > 4096) { channel.destroy(); wake(new Error('line too long')); return }
    wake()
  })
  channel.on('close', () => wake(new Error('the rendezvous channel closed')))
  channel.on('error', () => {})
  // A channel handed over paused (its first line read by its owner) flows from here.
  channel.resume()
  return {
    async next (timeoutMs) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const line = lines.shift()
        if (line !== undefined) {
          const parsed = JSON.parse(line) as unknown
          if (typeof parsed !== 'object' || parsed === null) throw new Error('bad line')
          return parsed as Record<string, unknown>
        }
        if (channel.destroyed) throw new Error('the rendezvous channel closed')
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('the peer did not answer in time')), Math.max(0, deadline - Date.now()))
          waiting.push(err => { clearTimeout(t); if (err === undefined) resolve(); else reject(err) })
        })
      }
    }
  }
}

/** Resolves undefined after `ms` (a race's timeout that keeps no process alive). */
async function delay (ms: number): Promise<undefined> {
  return await sleep(ms, undefined, { ref: false })
}
