/**
 * Applies interception rules with `nft -f -`: one atomic transaction per
 * change, holding only what changed. Nothing is flushed periodically; on
 * start the table left by a previous run is read and reconciled in one
 * transaction, so kernel-path services keep working across agent restarts.
 */
import { spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import type { Logger } from '../observability/logger.ts'
import { InterceptionError } from './errors.ts'
import { TABLE, renderCleanup, renderDiff, renderReplace } from './rules.ts'
import type { PortRule } from './rules.ts'

/** Installs the rules that steer ClusterIP traffic to the agent or straight to endpoints. */
export interface Interceptor {
  readonly name: string
  /** Reads what a previous run left: userspace listener ports by rule key, so listeners can rebind them. */
  load (): Promise<ReadonlyMap<string, number>>
  /** Makes the installed rules equal `desired` (the full set, not a delta). */
  apply (desired: ReadonlyMap<string, PortRule>): Promise<void>
  /** Removes every rule (cleanup; never called on a normal stop). */
  remove (): Promise<void>
  /** Releases helper processes; the rules stay. */
  close? (): void
  /** False when this interceptor can only send traffic to listeners (iptables): the proxy then keeps every port in userspace. */
  readonly kernelPath?: boolean
}

/** Runs `nft` with a script on stdin; resolves stdout. */
export type NftRunner = (args: readonly string[], script?: string) => Promise<string>

/**
 * Runs a command with optional stdin; resolves stdout. A missing binary
 * names the Debian package to install; a non-zero exit carries stderr.
 */
export async function runCommand (argv: readonly string[], input?: string, debianPackage = argv[0] as string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d })
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(new InterceptionError(e.code === 'ENOENT' ? `${argv[0] as string} not found (install ${debianPackage})` : e.message, '', { cause: e }))
    })
    child.on('close', (code) => {
      if (code === 0) resolve(out)
      else reject(new InterceptionError(`${argv.join(' ')} exited with ${String(code)}`, err))
    })
    if (child.stdin !== null) {
      // The command may exit (and close its stdin) before reading input it rejects: the exit code tells.
      child.stdin.on('error', () => {})
      child.stdin.end(input)
    }
  })
}

export const runNft: NftRunner = async (args, script) => await runCommand(['nft', ...args], script, 'nftables')

/**
 * A long-lived `nft -i`: one input line is one atomic transaction, and the
 * process keeps its ruleset cache between lines. A one-shot `nft -f` re-reads
 * the whole table first, which costs ~40 ms at 10k services; this costs a few.
 * After each line a listing of the tiny `sync` set marks where its output ends.
 */
export class NftShell {
  #child: ChildProcessWithoutNullStreams | undefined
  #out = ''
  #waiter: { resolve: () => void, reject: (err: Error) => void } | undefined

  async run (lines: readonly string[], timeoutMs = 5000): Promise<void> {
    const child = this.#child ?? this.#spawn()
    this.#out = ''
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { this.close(); reject(new InterceptionError('nft -i did not answer', this.#out)) }, timeoutMs)
      this.#waiter = {
        resolve: () => { clearTimeout(timer); this.#waiter = undefined; resolve() },
        reject: (err) => { clearTimeout(timer); this.#waiter = undefined; reject(err) }
      }
    })
    child.stdin.write(lines.join('; ') + `\nlist set ip ${TABLE} sync\n`)
    await done
    if (/^Error:/m.test(this.#out)) throw new InterceptionError('nft transaction failed', this.#out)
  }

  close (): void {
    this.#child?.kill()
    this.#child = undefined
  }

  #spawn (): ChildProcessWithoutNullStreams {
    // One pipe for both streams keeps errors ahead of the marker that follows them.
    const child = spawn('sh', ['-c', 'exec nft -i 2>&1'], { stdio: ['pipe', 'pipe', 'pipe'] })
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      this.#out += d
      if (/set sync \{[^}]*\}\s*\}\s*$/.test(this.#out)) this.#waiter?.resolve()
    })
    child.on('exit', () => {
      if (this.#child === child) this.#child = undefined
      this.#waiter?.reject(new InterceptionError('nft -i exited', this.#out))
    })
    child.on('error', () => {})
    child.stdin.on('error', () => {})
    this.#child = child
    return child
  }
}

interface NftJson { nftables?: Array<Record<string, { name?: string, elem?: unknown[] }>> }

/** What a previous run left in our table. */
export interface TableState { chains: string[], sets: string[], listeners: Map<string, number> }

export function parseTable (json: string): TableState {
  const state: TableState = { chains: [], sets: [], listeners: new Map() }
  const doc = JSON.parse(json) as NftJson
  for (const item of doc.nftables ?? []) {
    if (item.chain?.name !== undefined) state.chains.push(item.chain.name)
    if (item.set?.name !== undefined) state.sets.push(item.set.name)
    if (item.map?.name === 'userspace') {
      for (const e of item.map.elem ?? []) {
        // [{ concat: [ip, proto, port] }, { concat: [listenIp, listenPort] }]
        const [k, v] = e as [{ concat?: [string, string, number] }, { concat?: [string, number] }]
        const [ip, proto, port] = k.concat ?? []
        const listenPort = v.concat?.[1]
        if (ip !== undefined && proto !== undefined && port !== undefined && listenPort !== undefined) {
          state.listeners.set(`${ip}/${proto}/${port}`, listenPort)
        }
      }
    }
  }
  return state
}

export class NftInterceptor implements Interceptor {
  readonly name = 'nftables'
  readonly #log: Logger
  readonly #run: NftRunner
  /** Incremental updates go through a long-lived `nft -i`; undefined with an injected runner (tests). */
  readonly #shell: NftShell | undefined
  #existing: TableState = { chains: [], sets: [], listeners: new Map() }
  /** What is installed now; undefined until the first reconcile. */
  #current: Map<string, PortRule> | undefined
  #queue: Promise<void> = Promise.resolve()
  #pending: ReadonlyMap<string, PortRule> | undefined

  constructor (deps: { logger: Logger, run?: NftRunner }) {
    this.#log = deps.logger
    this.#run = deps.run ?? runNft
    this.#shell = deps.run === undefined ? new NftShell() : undefined
  }

  /** Ends the long-lived `nft -i` (the rules stay). */
  close (): void {
    this.#shell?.close()
  }

  async load (): Promise<ReadonlyMap<string, number>> {
    this.#existing = await this.#readTable()
    this.#current = undefined
    return this.#existing.listeners
  }

  async apply (desired: ReadonlyMap<string, PortRule>): Promise<void> {
    // Coalesce: while one transaction runs, later calls collapse into one.
    const first = this.#pending === undefined
    this.#pending = desired
    if (!first) { await this.#queue; return }
    const run = this.#queue.then(async () => {
      const next = this.#pending as ReadonlyMap<string, PortRule>
      this.#pending = undefined
      await this.#applyNow(next)
    })
    this.#queue = run.catch(() => {})
    await run
  }

  async remove (): Promise<void> {
    await this.#run(['-f', '-'], renderCleanup().join('\n') + '\n')
    this.#current = undefined
  }

  async #applyNow (desired: ReadonlyMap<string, PortRule>): Promise<void> {
    const current = this.#current
    if (current !== undefined) {
      const script = renderDiff(current, desired)
      if (script.length === 0) return
      try {
        if (this.#shell !== undefined) await this.#shell.run(script)
        else await this.#run(['-f', '-'], script.join('\n') + '\n')
        this.#current = new Map(desired)
        return
      } catch (err) {
        // Someone changed our table behind our back: reconcile from what is there.
        this.#log.warn('incremental nftables update failed; reconciling the whole table', { err })
        this.#existing = await this.#readTable()
      }
    }
    await this.#run(['-f', '-'], renderReplace(desired, this.#existing).join('\n') + '\n')
    this.#current = new Map(desired)
  }

  async #readTable (): Promise<TableState> {
    try {
      return parseTable(await this.#run(['-j', 'list', 'table', 'ip', TABLE]))
    } catch (err) {
      if (err instanceof InterceptionError && /No such file or directory/.test(err.stderr)) return { chains: [], sets: [], listeners: new Map() }
      throw err
    }
  }
}

/**
 * Installs nothing: for running without privileges (tests, the local demo),
 * where clients connect to the listeners directly. Keeps the last desired
 * set so callers can inspect it.
 */
export class NoInterceptor implements Interceptor {
  readonly name = 'none'
  desired: ReadonlyMap<string, PortRule> = new Map()
  async load (): Promise<ReadonlyMap<string, number>> { return new Map() }
  async apply (desired: ReadonlyMap<string, PortRule>): Promise<void> { this.desired = desired }
  async remove (): Promise<void> { this.desired = new Map() }
}
