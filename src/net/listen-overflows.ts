/**
 * The kernel's count of connections it dropped because a listener's accept
 * queue was full (`TcpExt ListenOverflows` in /proc/net/netstat, for the
 * node's network namespace). When the agent is starved of CPU, clients time out
 * there, before the agent sees them: without this, that overload is silent.
 */
import { readFile } from 'node:fs/promises'

/** ListenOverflows from the text of /proc/net/netstat; undefined when it has none. */
export function parseListenOverflows (netstat: string): number | undefined {
  const lines = netstat.split('\n')
  for (let i = 0; i + 1 < lines.length; i++) {
    const names = lines[i]?.split(/\s+/) ?? []
    const values = lines[i + 1]?.split(/\s+/) ?? []
    if (names[0] !== 'TcpExt:' || values[0] !== 'TcpExt:') continue
    const at = names.indexOf('ListenOverflows')
    const value = at > 0 ? Number(values[at]) : NaN
    return Number.isSafeInteger(value) ? value : undefined
  }
  return undefined
}

/** Polls the counter; `onOverflow` gets how many were dropped since the last poll. */
export class ListenOverflowWatch {
  readonly #onOverflow: (dropped: number) => void
  readonly #everyMs: number
  readonly #file: string
  #last: number | undefined
  #timer: NodeJS.Timeout | undefined

  constructor (onOverflow: (dropped: number) => void, init: { everyMs?: number, file?: string } = {}) {
    this.#onOverflow = onOverflow
    this.#everyMs = init.everyMs ?? 5000
    this.#file = init.file ?? '/proc/net/netstat'
  }

  async start (): Promise<void> {
    if (this.#timer !== undefined) return
    this.#last = await this.#read()
    this.#timer = setInterval(() => { this.#poll().catch(() => {}) }, this.#everyMs).unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  async #poll (): Promise<void> {
    const now = await this.#read()
    if (now === undefined) return
    const dropped = this.#last === undefined ? 0 : now - this.#last
    this.#last = now
    if (dropped > 0) this.#onOverflow(dropped)
  }

  async #read (): Promise<number | undefined> {
    try {
      return parseListenOverflows(await readFile(this.#file, 'utf8'))
    } catch {
      // No procfs (not Linux): nothing to watch.
      return undefined
    }
  }
}
