/**
 * Reloads `modules.edgeTunnel.relayNodes` when the config file changes
 * (upstream reloads only that key, without a restart). The directory is
 * watched because ConfigMap updates and editors replace the file by rename.
 * A file that fails to load keeps the current relays and says why.
 */
import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import type { Component } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'

const DEBOUNCE_MS = 200
/** A re-read now and then catches edits a file watch missed (overlay filesystems, inotify limits). */
const POLL_MS = 10_000

export interface RelayWatcherInit<T> {
  file: string
  /** Reads the file and returns its relay list (throws when the file is broken). */
  read: (file: string) => Promise<T>
  apply: (relays: T) => Promise<void>
}

export class RelayWatcher<T> implements Component {
  readonly name = 'relay-watcher'
  readonly #log: Logger
  readonly #init: RelayWatcherInit<T>
  #watcher: FSWatcher | undefined
  #timer: NodeJS.Timeout | undefined
  #poll: NodeJS.Timeout | undefined
  #current: T | undefined
  /** The file's bytes when it was last read: an unchanged file is not parsed again. */
  #text: Buffer | undefined
  #lastError: string | undefined
  #work: Promise<void> = Promise.resolve()

  constructor (deps: { logger: Logger }, init: RelayWatcherInit<T>) {
    this.#log = deps.logger
    this.#init = init
  }

  async start (): Promise<void> {
    if (this.#watcher !== undefined) return
    this.#text = await readFile(this.#init.file).catch(() => undefined)
    this.#current = await this.#init.read(this.#init.file).catch(() => undefined)
    this.#watcher = watch(dirname(this.#init.file), (_, name) => {
      if (name !== null && name !== basename(this.#init.file) && !name.startsWith('..')) return
      clearTimeout(this.#timer)
      this.#timer = setTimeout(() => this.#schedule(), DEBOUNCE_MS)
    })
    this.#poll = setInterval(() => this.#schedule(), POLL_MS)
    this.#poll.unref()
  }

  #schedule (): void {
    this.#work = this.#work.then(async () => await this.#reload())
  }

  async stop (): Promise<void> {
    clearTimeout(this.#timer)
    clearInterval(this.#poll)
    this.#watcher?.close()
    this.#watcher = undefined
    await this.#work
  }

  async #reload (): Promise<void> {
    // Parsing the config every 10 s, and deriving relay IDs from it, was an idle
    // agent's only work: enough for V8 to optimise it and keep its compilers' code
    // resident (about 7 MB of RSS after 20 s idle, bench/footprint).
    const text = await readFile(this.#init.file).catch(() => undefined)
    if (text !== undefined && this.#text !== undefined && text.equals(this.#text)) return
    this.#text = text
    let relays: T
    try {
      relays = await this.#init.read(this.#init.file)
    } catch (err) {
      // Once per distinct problem: the periodic re-read must not repeat it every few seconds.
      const message = (err as Error).message
      if (message !== this.#lastError) this.#log.error('config file changed but does not load; keeping the current relayNodes', { file: this.#init.file, err: message })
      this.#lastError = message
      return
    }
    this.#lastError = undefined
    if (isDeepStrictEqual(relays, this.#current)) return
    this.#current = relays
    await this.#init.apply(relays).catch(err => this.#log.error('relayNodes not applied', { err }))
  }
}
