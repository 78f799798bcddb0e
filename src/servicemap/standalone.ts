import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { parseAllDocuments } from 'yaml'
import type { Informer, InformerHandlers } from '../kube/informer-types.ts'
import type { EndpointSlice, Endpoints, KubeObject, Service } from '../kube/types.ts'
import { objectKey } from '../kube/types.ts'
import { endpointsToSlice } from '../kube/endpoint-slice-source.ts'
import type { Logger } from '../observability/logger.ts'
import { StandaloneFileError } from './errors.ts'
import { compactService, compactSlice } from './build.ts'
import type { CompactService, CompactSlice } from './build.ts'

/** Editors save in bursts (truncate, write, rename): wait for quiet. */
const DEBOUNCE_MS = 100

/** Parses a standalone file: YAML documents, each an object or a `kind: List`. */
export function parseStandalone (text: string, file: string): KubeObject[] {
  const docs = parseAllDocuments(text)
  const out: KubeObject[] = []
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    if (doc.errors.length > 0) {
      const e = doc.errors[0]
      const where = e?.linePos?.[0] !== undefined ? ` at line ${e.linePos[0].line}` : ''
      throw new StandaloneFileError(file, `is not valid YAML${where}: ${e?.message.split('\n')[0] ?? ''}`)
    }
    const value = doc.toJS() as unknown
    if (value === null || value === undefined) continue
    const items = (value as { kind?: string }).kind === 'List' ? (value as { items?: unknown[] }).items ?? [] : [value]
    for (const item of items) {
      const o = item as KubeObject
      if (typeof o?.kind !== 'string' || typeof o.metadata?.name !== 'string') {
        throw new StandaloneFileError(file, 'holds an object without kind or metadata.name')
      }
      o.metadata.namespace ??= 'default'
      out.push(o)
    }
  }
  return out
}

/**
 * One standalone file as read by every informer of it: the text is parsed once
 * per change, not once per kind (5,000 VirtualServices took seconds per parse).
 */
export class StandaloneFile {
  readonly path: string
  #text: string | undefined
  #objects: KubeObject[] = []

  constructor (path: string) {
    this.path = path
  }

  async objects (): Promise<KubeObject[]> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      throw new StandaloneFileError(this.path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err })
    }
    if (text !== this.#text) {
      this.#objects = parseStandalone(text, this.path)
      this.#text = text
    }
    return this.#objects
  }
}

/**
 * An Informer backed by a YAML file instead of an API server. The file is
 * watched; edits become add/update/delete events. A file that fails to parse
 * keeps the last good state and logs why.
 */
export class FileInformer<T extends KubeObject> implements Informer<T> {
  readonly name: string
  readonly #source: StandaloneFile
  readonly #file: string
  readonly #select: (objects: KubeObject[]) => T[]
  readonly #log: Logger
  readonly #handlers: Array<InformerHandlers<T>> = []
  #store = new Map<string, T>()
  #synced = false
  #watcher: FSWatcher | undefined
  #debounce: NodeJS.Timeout | undefined
  #reading: Promise<void> = Promise.resolve()

  constructor (file: string | StandaloneFile, select: (objects: KubeObject[]) => T[], logger: Logger, name: string) {
    this.#source = typeof file === 'string' ? new StandaloneFile(file) : file
    this.#file = this.#source.path
    this.#select = select
    this.#log = logger
    this.name = name
  }

  addHandlers (handlers: InformerHandlers<T>): void { this.#handlers.push(handlers) }
  hasSynced (): boolean { return this.#synced }
  isReady (): boolean { return this.#synced }
  list (): T[] { return [...this.#store.values()] }
  get (key: string): T | undefined { return this.#store.get(key) }

  /** Rejects with StandaloneFileError if the file cannot be read or parsed at start. */
  async start (): Promise<void> {
    if (this.#watcher !== undefined) return
    this.#apply(await this.#read())
    this.#synced = true
    for (const h of this.#handlers) h.onSynced?.()
    // Watch the directory: editors and ConfigMap updates replace the file by rename.
    this.#watcher = watch(dirname(this.#file), (_, name) => {
      if (name !== null && name !== basename(this.#file) && !name.startsWith('..')) return
      clearTimeout(this.#debounce)
      this.#debounce = setTimeout(() => { this.#reading = this.#reading.then(() => this.#reload()) }, DEBOUNCE_MS)
    })
  }

  async stop (): Promise<void> {
    clearTimeout(this.#debounce)
    this.#watcher?.close()
    this.#watcher = undefined
    await this.#reading
  }

  async #read (): Promise<T[]> {
    return this.#select(await this.#source.objects())
  }

  async #reload (): Promise<void> {
    if (this.#watcher === undefined) return
    try {
      this.#apply(await this.#read())
    } catch (err) {
      this.#log.error('standalone file not applied; keeping the last good state', { file: this.#file, err: (err as Error).message })
    }
  }

  #apply (objects: T[]): void {
    const next = new Map(objects.map(o => [objectKey(o), o]))
    const previous = this.#store
    this.#store = next
    for (const [key, obj] of next) {
      const old = previous.get(key)
      if (old === undefined) for (const h of this.#handlers) h.onAdd?.(obj)
      else if (!isDeepStrictEqual(old, obj)) for (const h of this.#handlers) h.onUpdate?.(old, obj)
    }
    for (const [key, old] of previous) {
      if (!next.has(key)) for (const h of this.#handlers) h.onDelete?.(old)
    }
  }
}

/**
 * Services, EndpointSlices (Endpoints are converted) and Istio
 * DestinationRules from one standalone file: the source of the local demo and
 * of users without Kubernetes.
 */
export function createStandaloneInformers (path: string, logger: Logger): { services: FileInformer<CompactService>, endpointSlices: FileInformer<CompactSlice>, destinationRules: FileInformer<KubeObject>, ofKind: (kind: string, group?: string) => FileInformer<KubeObject> } {
  const file = new StandaloneFile(path)
  // Objects of one kind as they are (Istio Gateways, VirtualServices, Secrets); `group` tells Istio's Gateway from the Gateway API's.
  const ofKind = (kind: string, group?: string): FileInformer<KubeObject> => new FileInformer(file,
    objs => objs.filter(o => o.kind === kind && (group === undefined || (o.apiVersion ?? '').startsWith(`${group}/`))), logger, `standalone:${kind.toLowerCase()}s`)
  return {
    ofKind,
    destinationRules: ofKind('DestinationRule'),
    services: new FileInformer(file, objs => objs.filter(o => o.kind === 'Service').map(o => compactService(o as Service)), logger, 'standalone:services'),
    endpointSlices: new FileInformer(file, objs => objs.flatMap(o =>
      o.kind === 'EndpointSlice' ? [o as EndpointSlice] : o.kind === 'Endpoints' ? [endpointsToSlice(o as Endpoints)] : []
    ).map(compactSlice), logger, 'standalone:endpointslices')
  }
}
