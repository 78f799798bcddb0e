/**
 * What NAT this node is behind, learned from the relays' reflectors (RFC
 * 5780's tests over the relays we already know): one UDP socket asks every
 * relay where it was seen from. The same address and port from two relays
 * means an endpoint-independent mapping (a cone); different ones, a mapping
 * per destination (symmetric); the node's own address, no NAT. An answer that
 * comes back from another port of the relay means the NAT's filtering does not
 * depend on the remote port. The result, with this node's candidate
 * addresses, is in `edgemesh status` and `doctor`; checked at start and
 * every `intervalMs`.
 */
import dgram from 'node:dgram'
import { lookup } from 'node:dns/promises'
import { isIPv4 } from 'node:net'
import type { Component } from '../lifecycle/component.ts'
import { procView } from '../net/local-sources.ts'
import type { Logger } from '../observability/logger.ts'
import { decodeResponse, encodeRequest } from './stun.ts'
import type { NatMetrics } from './metrics.ts'
import type { NatKind, NatStatus } from '../observability/status.ts'
import type { Datagrams } from './datagrams.ts'

const KINDS: readonly NatKind[] = ['public', 'cone', 'symmetric', 'unknown', 'udp-blocked']

/** What the node learned (one type with /status, where it is shown). */
export type NatReport = NatStatus
export type { NatKind }

export interface NatDiscoveryInit {
  relays: ReadonlyArray<{ nodeName: string, addresses: ReadonlyArray<{ host: string, port: number }> }>
  /** @default 300000 */
  intervalMs?: number
  /** Each test's wait for answers (requests are sent again at 0, 1/4 and 3/4 of it). @default 1500 */
  timeoutMs?: number
  /** This node's own IPv4 addresses (`public` when a relay sees one of them). @default every non-internal interface address */
  localAddresses?: () => string[]
  /**
   * The socket to check from: the node's punching socket, so that the mapping found is the one
   * punched paths use. Undefined (or returning undefined): a socket of its own per check.
   */
  datagrams?: () => Datagrams | undefined
}

/** The host's IPv4 addresses but loopback, from the same view of the host as the proxy's local sources. */
function ownAddresses (): string[] {
  return procView.addresses().filter(a => isIPv4(a) && !a.startsWith('127.'))
}

export class NatDiscovery implements Component {
  readonly name = 'nat'
  readonly #log: Logger
  readonly #metrics: NatMetrics
  readonly #init: Required<NatDiscoveryInit>
  #report: NatReport | undefined
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #stopped = true

  constructor (deps: { logger: Logger, metrics: NatMetrics }, init: NatDiscoveryInit) {
    this.#log = deps.logger
    this.#metrics = deps.metrics
    this.#init = { intervalMs: 300_000, timeoutMs: 1500, localAddresses: ownAddresses, datagrams: () => undefined, ...init }
  }

  /** Starts the first check without waiting for it: the node serves meanwhile. */
  async start (): Promise<void> {
    if (!this.#stopped) return
    this.#stopped = false
    this.#schedule(0)
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
  }

  /** The last check's result; undefined before the first one ends. */
  report (): NatReport | undefined {
    return this.#report
  }

  /** Checks now (as at start and every intervalMs). */
  async check (): Promise<NatReport> {
    const report = await this.#probe()
    this.#report = report
    this.#metrics.checks.inc({ result: report.kind })
    for (const k of KINDS) this.#metrics.kind.set({ kind: k }, k === report.kind ? 1 : 0)
    return report
  }

  #schedule (ms: number): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#running = this.check().then(r => {
        this.#log.info('nat checked', { kind: r.kind, mapping: r.mapping, filtering: r.filtering, mapped: r.mapped.map(m => `${m.relay} ${m.address}`) })
      }, (err: unknown) => {
        this.#log.warn('nat check failed', { err })
      }).finally(() => { this.#running = undefined; this.#schedule(this.#init.intervalMs) })
    }, ms)
    this.#timer.unref()
  }

  async #probe (): Promise<NatReport> {
    const shared = this.#init.datagrams()
    const own = shared === undefined ? await ownSocket() : undefined
    const socket = shared ?? own?.datagrams as Datagrams
    try {
      const localPort = socket.port
      const targets = (await Promise.all(this.#init.relays.map(async r => {
        const a = r.addresses[0]
        if (a === undefined) return []
        const ip = isIPv4(a.host) ? a.host : await lookup(a.host, { family: 4 }).then(x => x.address, () => undefined)
        return ip === undefined ? [] : [{ relay: r.nodeName, ip, port: a.port }]
      }))).flat()
      const answers = await this.#ask(socket, targets.map(t => ({ ...t, changePort: false })))
      const mapped = targets.flatMap(t => {
        const a = answers.get(t.relay)
        return a === undefined ? [] : [{ relay: t.relay, address: `${a.mapped.address}:${a.mapped.port}`, fromPort: a.fromPort, ip: a.mapped.address, port: a.mapped.port }]
      })
      // Filtering: the first relay that answered is asked to answer from another port.
      let filtering: NatReport['filtering'] = 'unknown'
      const first = targets.find(t => answers.has(t.relay))
      if (first !== undefined) {
        const changed = await this.#ask(socket, [{ ...first, changePort: true }])
        const a = changed.get(first.relay)
        filtering = a !== undefined && a.fromPort !== first.port ? 'port-independent' : 'port-dependent'
      }
      const addresses = this.#init.localAddresses()
      const distinct = new Set(mapped.map(m => m.address))
      const isPublic = mapped.length > 0 && mapped.every(m => addresses.includes(m.ip) && m.port === localPort)
      const mapping: NatReport['mapping'] = mapped.length < 2 ? 'unknown' : distinct.size === 1 ? 'endpoint-independent' : 'endpoint-dependent'
      const kind: NatKind = mapped.length === 0
        ? 'udp-blocked'
        : isPublic ? 'public' : mapping === 'endpoint-independent' ? 'cone' : mapping === 'endpoint-dependent' ? 'symmetric' : 'unknown'
      const portPreserved = mapped.length === 0 ? undefined : mapped.every(m => m.port === localPort)
      const summary = {
        public: 'no NAT: the relays see this node\'s own address',
        cone: `cone NAT: one public mapping for every destination${portPreserved === true ? ', port preserved' : ''}; ${filtering === 'port-dependent' ? 'answers only from the exact address and port sent to (port-restricted)' : 'answers from other ports of a contacted address pass (address-restricted or full cone)'}`,
        symmetric: 'symmetric NAT: a new public port for every destination; direct paths need the peer\'s NAT to be a cone',
        unknown: `${mapped.length} of ${targets.length} relays answered: two are needed to tell a cone from a symmetric NAT`,
        'udp-blocked': targets.length === 0 ? 'no relay address to ask' : `no relay answered on UDP (${targets.map(t => `${t.ip}:${t.port}`).join(', ')}): UDP blocked, or relays without the reflector (Go agents)`
      }[kind]
      return {
        kind,
        mapping: isPublic ? 'endpoint-independent' : mapping,
        filtering,
        portPreserved,
        localPort,
        mapped: mapped.map(m => ({ relay: m.relay, address: m.address })),
        candidates: [...addresses.map(a => `${a}:${localPort}`), ...[...distinct].filter(a => !addresses.some(o => a === `${o}:${localPort}`))],
        summary,
        checkedAt: new Date().toISOString()
      }
    } finally {
      own?.close()
    }
  }

  /** Sends a binding request to each target (again at 1/4 and 3/4 of the timeout) and collects the first answer of each. */
  async #ask (socket: Datagrams, targets: Array<{ relay: string, ip: string, port: number, changePort: boolean }>): Promise<Map<string, { mapped: { address: string, port: number }, fromPort: number }>> {
    const answers = new Map<string, { mapped: { address: string, port: number }, fromPort: number }>()
    if (targets.length === 0) return answers
    const pending = new Map(targets.map(t => {
      const { bytes, transactionId } = encodeRequest(t.changePort)
      return [transactionId.toString('hex'), { ...t, bytes }] as const
    }))
    const timeoutMs = this.#init.timeoutMs
    await new Promise<void>(resolve => {
      const onMessage = (msg: Buffer, from: { host: string, port: number }): void => {
        const r = decodeResponse(msg)
        const t = r === undefined ? undefined : pending.get(r.transactionId.toString('hex'))
        // Only an answer from the relay's own address counts; the port may differ (the change-port test).
        if (r === undefined || t === undefined || from.host !== t.ip) return
        answers.set(t.relay, { mapped: r.mapped, fromPort: from.port })
        pending.delete(r.transactionId.toString('hex'))
        if (pending.size === 0) done()
      }
      const send = (): void => { for (const t of pending.values()) socket.send(t.bytes, t.port, t.ip) }
      const timers = [setTimeout(send, 0), setTimeout(send, timeoutMs / 4), setTimeout(send, (timeoutMs * 3) / 4), setTimeout(() => done(), timeoutMs)]
      const done = (): void => {
        for (const t of timers) clearTimeout(t)
        stop()
        resolve()
      }
      const stop = socket.listen(onMessage)
    })
    return answers
  }
}

/** A UDP socket for one check, when the node has no punching socket. */
async function ownSocket (): Promise<{ datagrams: Datagrams, close: () => void }> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve, reject) => { socket.once('error', reject); socket.bind(0, () => { socket.off('error', reject); resolve() }) })
  socket.on('error', () => {})
  return {
    datagrams: {
      port: socket.address().port,
      send: (bytes, port, host) => { socket.send(bytes, port, host) },
      listen: fn => {
        const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => { fn(msg, { host: rinfo.address, port: rinfo.port }) }
        socket.on('message', onMessage)
        return () => { socket.off('message', onMessage) }
      }
    },
    close: () => { socket.close() }
  }
}
