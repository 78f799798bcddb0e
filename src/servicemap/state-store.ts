import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { dirname, join, basename } from 'node:path'
import type { ServiceEntry, ServiceKey } from './types.ts'
import { StateFileError } from './errors.ts'

const FORMAT_VERSION = 1

export interface PersistedState {
  savedAt: string
  entries: Map<ServiceKey, ServiceEntry>
}

/** Where the last synced service map survives restarts (edge autonomy). */
export interface StateStore {
  /** The saved state, or undefined if none. Throws StateFileError if unreadable or corrupt. */
  load (): Promise<PersistedState | undefined>
  save (entries: ReadonlyMap<ServiceKey, ServiceEntry>): Promise<void>
  readonly description: string
}

/** JSON file, written atomically (temp file, fsync, rename), mode 0600. */
export class FileStateStore implements StateStore {
  readonly #path: string
  constructor (path: string) { this.#path = path }
  get description (): string { return this.#path }

  async load (): Promise<PersistedState | undefined> {
    let text: string
    try {
      text = await readFile(this.#path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new StateFileError(this.#path, 'cannot be read', { cause: err })
    }
    let doc: { version?: unknown, savedAt?: unknown, services?: unknown }
    try { doc = JSON.parse(text) } catch (err) { throw new StateFileError(this.#path, 'is not valid JSON', { cause: err }) }
    if (doc.version !== FORMAT_VERSION || typeof doc.savedAt !== 'string' || !Array.isArray(doc.services)) {
      throw new StateFileError(this.#path, `has an unknown format (version ${JSON.stringify(doc.version)})`)
    }
    const entries = new Map<ServiceKey, ServiceEntry>()
    for (const e of doc.services as ServiceEntry[]) {
      if (typeof e?.service?.namespace !== 'string' || typeof e.service.name !== 'string' || !Array.isArray(e.endpoints)) {
        throw new StateFileError(this.#path, 'holds a malformed service entry')
      }
      entries.set(`${e.service.namespace}/${e.service.name}`, e)
    }
    return { savedAt: doc.savedAt, entries }
  }

  async save (entries: ReadonlyMap<ServiceKey, ServiceEntry>): Promise<void> {
    const dir = dirname(this.#path)
    const tmp = join(dir, `.${basename(this.#path)}.${process.pid}.tmp`)
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 })
      const fh = await open(tmp, 'w', 0o600)
      try {
        await fh.writeFile(JSON.stringify({ version: FORMAT_VERSION, savedAt: new Date().toISOString(), services: [...entries.values()] }))
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, this.#path)
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {})
      throw new StateFileError(this.#path, 'cannot be written', { cause: err })
    }
  }
}
