/**
 * Applies interception rules with `nft -f -`: one atomic transaction per
 * change, holding only what changed. Nothing is flushed periodically; on
 * start the table left by a previous run is read and reconciled in one
 * transaction, so kernel-path services keep working across agent restarts.
 */
import { spawn } from 'node:child_process'
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
}

/** Runs `nft` with a script on stdin; resolves stdout. */
export type NftRunner = (args: readonly string[], script?: string) => Promise<string>

export const runNft: NftRunner = async (args, script) => await new Promise((resolve, reject) => {
  const child = spawn('nft', [...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
  child.on('error', (e: NodeJS.ErrnoException) => {
    reject(new InterceptionError(e.code === 'ENOENT' ? 'nft not found (install nftables)' : e.message, '', { cause: e }))
  })
  child.on('close', (code) => {
    if (code === 0) resolve(out)
    else reject(new InterceptionError(`nft ${args.join(' ')} exited with ${String(code)}`, err))
  })
  child.stdin.end(script ?? '')
})

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
  #existing: TableState = { chains: [], sets: [], listeners: new Map() }
  /** What is installed now; undefined until the first reconcile. */
  #current: Map<string, PortRule> | undefined
  #queue: Promise<void> = Promise.resolve()
  #pending: ReadonlyMap<string, PortRule> | undefined

  constructor (deps: { logger: Logger, run?: NftRunner }) {
    this.#log = deps.logger
    this.#run = deps.run ?? runNft
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
        await this.#run(['-f', '-'], script.join('\n') + '\n')
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
