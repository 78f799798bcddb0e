/**
 * Interception with iptables, for nodes where nftables is not there (old
 * kernels without nf_tables, images without `nft`). Every service port is
 * DNATed to the agent's listener (no kernel path: nftables is what makes that
 * one cheap to express and to update).
 *
 * One chain of our own in the nat table, `EDGEMESH-SERVICES`, jumped to first
 * from PREROUTING (pods) and OUTPUT (the host), so our rules win over
 * kube-proxy's for the service ports we proxy and leave every other packet to
 * it. Each change rewrites that chain in one `iptables-restore --noflush`
 * (atomic for the table; nothing else is touched). The backend (nft or
 * legacy) is the one already holding rules, as kube-proxy decides it.
 */
import type { Logger } from '../observability/logger.ts'
import { runCommand } from './nftables.ts'
import type { Interceptor } from './nftables.ts'
import type { PortRule } from './rules.ts'
import { ruleKey } from './rules.ts'
import { byCodeUnits } from '../order.ts'
import { detectBackend } from '../net/iptables-backend.ts'
import type { IptablesBackend } from '../net/iptables-backend.ts'

export const IPTABLES_CHAIN = 'EDGEMESH-SERVICES'
const HOOKS = ['PREROUTING', 'OUTPUT'] as const
const JUMP = ['-m', 'comment', '--comment', 'edgemesh service portals', '-j', IPTABLES_CHAIN]

/** Runs a command with optional stdin; resolves stdout. */
export type CommandRunner = (argv: readonly string[], input?: string) => Promise<string>

const runIptables: CommandRunner = async (argv, input) => await runCommand(argv, input, 'iptables')

export { detectBackend } from '../net/iptables-backend.ts'
export type { IptablesBackend } from '../net/iptables-backend.ts'

function quote (comment: string): string {
  return `"${comment.replace(/["\\]/g, '').slice(0, 250)}"`
}

/** The `iptables-restore --noflush` script that makes our chain hold exactly `desired`. */
export function renderIptables (desired: ReadonlyMap<string, PortRule>): string {
  const lines = ['*nat', `:${IPTABLES_CHAIN} - [0:0]`]
  for (const r of [...desired.values()].sort((a, b) => byCodeUnits(ruleKey(a), ruleKey(b)))) {
    if (r.target.kind !== 'userspace') continue
    lines.push(`-A ${IPTABLES_CHAIN} -d ${r.ip}/32 -p ${r.protocol} -m ${r.protocol} --dport ${r.port} -m comment --comment ${quote(r.comment)} -j DNAT --to-destination ${r.target.listener.ip}:${r.target.listener.port}`)
  }
  lines.push('COMMIT', '')
  return lines.join('\n')
}

/** Listener ports by rule key, from `iptables-save -t nat` output. */
export function parseIptables (saved: string): Map<string, number> {
  const out = new Map<string, number>()
  const rule = new RegExp(`^-A ${IPTABLES_CHAIN} -d (\\S+?)(?:/32)? -p (tcp|udp) .*--dport (\\d+) .*-j DNAT --to-destination [^:]+:(\\d+)`)
  for (const line of saved.split('\n')) {
    const m = rule.exec(line)
    if (m !== null) out.set(ruleKey({ ip: m[1] as string, protocol: m[2] as 'tcp' | 'udp', port: Number(m[3]) }), Number(m[4]))
  }
  return out
}

export class IptablesInterceptor implements Interceptor {
  readonly name = 'iptables'
  /** Only listeners: the proxy keeps every service port in userspace. */
  readonly kernelPath = false
  readonly #log: Logger
  readonly #run: CommandRunner
  #backend: IptablesBackend | undefined
  #applied: string | undefined
  #queue: Promise<void> = Promise.resolve()

  constructor (deps: { logger: Logger, run?: CommandRunner, backend?: IptablesBackend }) {
    this.#log = deps.logger
    this.#run = deps.run ?? runIptables
    this.#backend = deps.backend
  }

  async #ensureBackend (): Promise<IptablesBackend> {
    this.#backend ??= await detectBackend(this.#run)
    return this.#backend
  }

  async load (): Promise<ReadonlyMap<string, number>> {
    const b = await this.#ensureBackend()
    const saved = await this.#run([b.save, '-t', 'nat'])
    this.#log.info('iptables interception', { backend: b.name, command: b.iptables })
    this.#applied = undefined
    return parseIptables(saved)
  }

  async apply (desired: ReadonlyMap<string, PortRule>): Promise<void> {
    const run = this.#queue.then(async () => { await this.#applyNow(desired) })
    this.#queue = run.catch(() => {})
    await run
  }

  async #applyNow (desired: ReadonlyMap<string, PortRule>): Promise<void> {
    const b = await this.#ensureBackend()
    const script = renderIptables(desired)
    if (script === this.#applied) return
    await this.#run([b.restore, '--noflush', '-w', '5'], script)
    // Jump to our chain first, once; a restart finds the jumps in place.
    for (const hook of HOOKS) {
      const present = await this.#run([b.iptables, '-w', '5', '-t', 'nat', '-C', hook, ...JUMP]).then(() => true, () => false)
      if (!present) await this.#run([b.iptables, '-w', '5', '-t', 'nat', '-I', hook, '1', ...JUMP])
    }
    this.#applied = script
  }

  /** Whether our chain exists (for `edgemesh cleanup`); false when iptables is not installed. */
  async installed (): Promise<boolean> {
    const b = await this.#ensureBackend()
    const saved = await this.#run([b.save, '-t', 'nat']).catch(() => '')
    return saved.split('\n').some(l => l.startsWith(`:${IPTABLES_CHAIN} `))
  }

  async remove (): Promise<void> {
    const b = await this.#ensureBackend()
    for (const hook of HOOKS) {
      // Every copy, in case a crash left more than one.
      for (;;) {
        const gone = await this.#run([b.iptables, '-w', '5', '-t', 'nat', '-D', hook, ...JUMP]).then(() => false, () => true)
        if (gone) break
      }
    }
    await this.#run([b.iptables, '-w', '5', '-t', 'nat', '-F', IPTABLES_CHAIN]).catch(() => {})
    await this.#run([b.iptables, '-w', '5', '-t', 'nat', '-X', IPTABLES_CHAIN]).catch(() => {})
    this.#applied = undefined
  }
}

/** Whether an nft failure means nftables is not there (binary or kernel support), rather than, say, missing privileges. */
export function nftUnavailable (err: unknown): boolean {
  return /nft not found|not supported|No such file or directory/i.test((err as Error)?.message ?? '')
}

/**
 * nftables when it works on this node, else iptables (decided once, at
 * load). The proxy asks `name` and `kernelPath` after load.
 */
export class FallbackInterceptor implements Interceptor {
  readonly #log: Logger
  readonly #probe: () => Promise<unknown>
  readonly #fallback: () => Interceptor
  #active: Interceptor

  constructor (deps: { logger: Logger, primary: Interceptor, fallback: () => Interceptor, probe: () => Promise<unknown> }) {
    this.#log = deps.logger
    this.#active = deps.primary
    this.#fallback = deps.fallback
    this.#probe = deps.probe
  }

  get name (): string { return this.#active.name }
  get kernelPath (): boolean { return this.#active.kernelPath !== false }

  async load (): Promise<ReadonlyMap<string, number>> {
    try {
      await this.#probe()
    } catch (err) {
      if (!nftUnavailable(err)) throw err
      this.#log.warn('nftables is not available on this node; intercepting with iptables (every service port through the agent)', { err: (err as Error).message })
      this.#active.close?.()
      this.#active = this.#fallback()
    }
    return await this.#active.load()
  }

  async apply (desired: ReadonlyMap<string, PortRule>): Promise<void> { await this.#active.apply(desired) }
  async remove (): Promise<void> { await this.#active.remove() }
  close (): void { this.#active.close?.() }
}
