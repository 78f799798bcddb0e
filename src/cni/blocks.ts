/**
 * IPAM without SpiderPool: each node claims a block of pod addresses (a /24
 * by default) from `meshCIDRConfig.edgeCIDR` or `cloudCIDR` (by the node's
 * side). A claim is a coordination.k8s.io Lease named after the block, held
 * by the node: the API server creates a name once, so two nodes racing for a
 * block get it once and the other moves on. The block is kept in a state
 * file, so an edge node restarting without the API keeps its pods' addresses.
 */
import { readFileSync } from 'node:fs'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { RESOURCES } from '../kube/types.ts'
import type { KubeObject, ResourceType } from '../kube/types.ts'
import type { Informer } from '../kube/informer-types.ts'
import type { BlockTable } from './router.ts'
import type { KubeClient } from '../kube/client.ts'
import { KubeNotFoundError } from '../kube/errors.ts'
import { objectPath } from '../kube/client.ts'
import type { Logger } from '../observability/logger.ts'
import { parseSubnet } from './config.ts'
import { cidrsOverlap, numberToIpv4 } from '../net/ipv4.ts'
import { CniError, CNI_BLOCK_CONFLICT, CNI_RANGE_FULL } from './errors.ts'

export const LEASES: ResourceType = RESOURCES.leases
export const BLOCK_LABEL = 'edgemesh.kubeedge.io/pod-block'
const CIDR_ANNOTATION = 'edgemesh.kubeedge.io/cidr'

/** What of the API the claims use. */
export interface LeaseApi {
  list: (namespace: string, labelSelector: string) => Promise<KubeObject[]>
  create: (namespace: string, lease: KubeObject) => Promise<unknown>
  get: (namespace: string, name: string) => Promise<KubeObject | undefined>
  delete: (namespace: string, name: string) => Promise<void>
}

/** The Lease API over the agent's client. */
export function kubeLeaseApi (client: KubeClient): LeaseApi {
  return {
    list: async (namespace, labelSelector) => (await client.list(LEASES, { namespace, labelSelector })).items,
    create: async (namespace, lease) => await client.create(LEASES, namespace, lease),
    get: async (namespace, name) => await client.get<KubeObject>(objectPath(LEASES, namespace, name)).catch((err: unknown) => {
      if (err instanceof KubeNotFoundError) return undefined
      throw err
    }),
    delete: async (namespace, name) => {
      await client.delete(LEASES, namespace, name).catch((err: unknown) => { if (!(err instanceof KubeNotFoundError)) throw err })
    }
  }
}

export interface BlockClaimInit {
  nodeName: string
  /** The CIDRs of this node's side, in order of preference. */
  cidrs: readonly string[]
  /** @default 24 */
  blockPrefix?: number
  /** Where the Leases live (the agent's namespace). */
  namespace: string
  /** The claimed block, kept for restarts without the API. */
  stateFile: string
}

/** The blocks of `cidr`, in address order: `10.244.64.0/18` in /24s is 64 blocks. */
export function blocksOf (cidr: string, blockPrefix: number): string[] {
  const s = parseSubnet(cidr, 'meshCIDRConfig')
  if (blockPrefix < s.prefix) return []
  const count = 2 ** (blockPrefix - s.prefix)
  return Array.from({ length: count }, (_, i) => `${numberToIpv4(s.network + i * 2 ** (32 - blockPrefix))}/${blockPrefix}`)
}

/** The node a block's Lease names as its holder. */
function holder (lease: KubeObject | undefined): string | undefined {
  return (lease as (KubeObject & { spec?: { holderIdentity?: string } }) | undefined)?.spec?.holderIdentity
}

/** The block a claim Lease names and the node holding it; undefined for a Lease that lacks either. */
export function blockOwner (lease: KubeObject): { block: string, nodeName: string } | undefined {
  const block = lease.metadata.annotations?.[CIDR_ANNOTATION]
  const nodeName = holder(lease)
  return block !== undefined && nodeName !== undefined && nodeName !== '' ? { block, nodeName } : undefined
}

/** Keeps what blockOwner reads of a claim Lease: what the routing plane's informer stores. */
export function compactClaim (lease: KubeObject): KubeObject {
  const m = lease.metadata
  const owner = blockOwner(lease)
  return {
    metadata: { name: m.name, namespace: m.namespace, resourceVersion: m.resourceVersion, ...(owner !== undefined ? { annotations: { [CIDR_ANNOTATION]: owner.block } } : {}) },
    ...(owner !== undefined ? { spec: { holderIdentity: owner.nodeName } } : {})
  } as KubeObject
}

/**
 * The claims as the routing plane reads them, from an informer on the claim
 * Leases (made before the informer starts). With `stateFile`, every table
 * the API gave is kept there, and until the informer has synced the table is
 * the kept one: an edge node that starts while the API is unreachable still
 * routes to the other nodes' pods (edge autonomy).
 */
export function informerBlockTable (informer: Informer<KubeObject>, stateFile?: string): BlockTable {
  const listeners: Array<() => void> = []
  let kept: Array<{ block: string, nodeName: string }> | undefined
  let saving: NodeJS.Immediate | undefined
  const live = (): Array<{ block: string, nodeName: string }> => informer.list().map(blockOwner).filter(o => o !== undefined)
  const changed = (): void => {
    for (const l of listeners) l()
    // A first list of 10k claims arrives as 10k events: one write after them.
    if (stateFile !== undefined && informer.hasSynced()) saving ??= setImmediate(() => { saving = undefined; keep(stateFile, live()).catch(() => {}) })
  }
  informer.addHandlers({ onAdd: changed, onUpdate: changed, onDelete: changed, onSynced: changed })
  return {
    owners: () => {
      if (informer.hasSynced() || stateFile === undefined) return live()
      kept ??= readKept(stateFile)
      return kept
    },
    onChange: listener => { listeners.push(listener) }
  }
}

/** The table a previous run kept; empty when there is none or it cannot be read. */
function readKept (file: string): Array<{ block: string, nodeName: string }> {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown
    return Array.isArray(v) ? v.filter((o): o is { block: string, nodeName: string } => typeof o?.block === 'string' && typeof o?.nodeName === 'string') : []
  } catch {
    return []
  }
}

async function keep (file: string, owners: Array<{ block: string, nodeName: string }>): Promise<void> {
  try {
    await mkdir(dirname(file), { recursive: true })
    await writeFile(`${file}.tmp`, JSON.stringify(owners))
    await rename(`${file}.tmp`, file)
  } catch {
    // Only a restart without the API misses it; the live table is unaffected.
  }
}

/** `10.244.64.0/24` → `edgemesh-block-10-244-64-0-24`: a Lease name. */
export function leaseName (block: string): string {
  return `edgemesh-block-${block.replace(/[./]/g, '-')}`
}

export class BlockClaims {
  readonly #api: LeaseApi
  readonly #log: Logger
  readonly #init: Required<BlockClaimInit>

  constructor (deps: { api: LeaseApi, logger: Logger }, init: BlockClaimInit) {
    this.#api = deps.api
    this.#log = deps.logger
    this.#init = { blockPrefix: 24, ...init }
  }

  /**
   * The block this node holds, claiming one when it holds none: the first
   * block of its CIDRs that overlaps no other claim. The state file when the
   * API cannot be reached.
   */
  async claim (): Promise<string> {
    return await this.#withClaims(async held => await this.#claimFree(held))
  }

  async #claimFree (held: KubeObject[]): Promise<string> {
    const { nodeName, namespace } = this.#init
    const claimed = held.map(l => ({ block: l.metadata.annotations?.[CIDR_ANNOTATION] ?? '', holder: holder(l) }))
    const mine = claimed.find(c => c.holder === nodeName && c.block !== '')?.block
    if (mine !== undefined) return await this.#keep(mine)
    for (const cidr of this.#init.cidrs) {
      for (const block of blocksOf(cidr, this.#init.blockPrefix)) {
        if (claimed.some(c => cidrsOverlap(c.block, block))) continue
        if (await this.#take(block)) return await this.#keep(block)
      }
    }
    throw new CniError(CNI_RANGE_FULL, `no free /${this.#init.blockPrefix} pod block in ${this.#init.cidrs.join(', ')}: ${held.length} are claimed (Leases labelled ${BLOCK_LABEL} in ${namespace})`)
  }

  /**
   * Claims exactly `block`, the node's own pod CIDR (`spec.podCIDR`, given by
   * the cluster): the routing plane learns it like any claim. A claim this
   * node held before for another block is given up; one another node holds
   * that overlaps it is an error naming that node.
   */
  async claimExact (block: string): Promise<string> {
    return await this.#withClaims(async held => await this.#claimGiven(block, held))
  }

  async #claimGiven (block: string, held: KubeObject[]): Promise<string> {
    const { nodeName, namespace } = this.#init
    const conflict = (lease: KubeObject): CniError => new CniError(CNI_BLOCK_CONFLICT,
      `the node's pod CIDR ${block} (spec.podCIDR) overlaps pod block ${lease.metadata.annotations?.[CIDR_ANNOTATION] ?? '?'} held by node ${holder(lease) ?? '?'} (Lease ${namespace}/${lease.metadata.name}): ` +
      'give the mesh CIDRs and the cluster\'s pod CIDRs (kube-controller-manager --cluster-cidr) ranges that do not overlap, or delete the stale Lease')
    let haveIt = false
    for (const lease of held) {
      const theirs = lease.metadata.annotations?.[CIDR_ANNOTATION] ?? ''
      if (holder(lease) !== nodeName) {
        if (cidrsOverlap(theirs, block)) throw conflict(lease)
      } else if (theirs === block) {
        haveIt = true
      } else {
        await this.#api.delete(namespace, lease.metadata.name)
        this.#log.warn('pod block given up: the node\'s spec.podCIDR replaces it', { given: theirs, block })
      }
    }
    if (haveIt || await this.#take(block)) return await this.#keep(block)
    const winner = await this.#api.get(namespace, leaseName(block))
    throw conflict(winner ?? { metadata: { name: leaseName(block) } } as KubeObject)
  }

  /** `use` with the claims the API lists; without the API, the block of the state file, else the API's error. */
  async #withClaims (use: (held: KubeObject[]) => Promise<string>): Promise<string> {
    let held: KubeObject[]
    try {
      held = await this.#api.list(this.#init.namespace, `${BLOCK_LABEL}=true`)
    } catch (err) {
      const kept = await this.persisted()
      if (kept === undefined) throw err
      this.#log.warn('pod block from the state file: the API is not reachable', { block: kept, err })
      return kept
    }
    return await use(held)
  }

  /** Gives the block back (uninstall). */
  async release (): Promise<void> {
    const block = await this.persisted()
    if (block === undefined) return
    const lease = await this.#api.get(this.#init.namespace, leaseName(block))
    if (holder(lease) === this.#init.nodeName) {
      await this.#api.delete(this.#init.namespace, leaseName(block))
    }
  }

  async persisted (): Promise<string | undefined> {
    try {
      const kept = JSON.parse(await readFile(this.#init.stateFile, 'utf8')) as { block?: unknown, node?: unknown }
      return typeof kept.block === 'string' && kept.node === this.#init.nodeName ? kept.block : undefined
    } catch {
      return undefined
    }
  }

  /** Creates the block's Lease; false when another node created it first. */
  async #take (block: string): Promise<boolean> {
    const { namespace, nodeName } = this.#init
    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: leaseName(block), namespace, labels: { [BLOCK_LABEL]: 'true' }, annotations: { [CIDR_ANNOTATION]: block } },
      spec: { holderIdentity: nodeName }
    }
    try {
      await this.#api.create(namespace, lease as unknown as KubeObject)
      this.#log.info('pod block claimed', { block, lease: `${namespace}/${leaseName(block)}` })
      return true
    } catch (err) {
      if ((err as { status?: number }).status !== 409) throw err
      // Ours after all when a create we retried had gone through.
      const existing = await this.#api.get(namespace, leaseName(block))
      return holder(existing) === nodeName
    }
  }

  async #keep (block: string): Promise<string> {
    const file = this.#init.stateFile
    await mkdir(dirname(file), { recursive: true })
    await writeFile(`${file}.tmp`, JSON.stringify({ node: this.#init.nodeName, block }))
    await rename(`${file}.tmp`, file)
    return block
  }
}
