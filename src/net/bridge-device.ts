/**
 * The interface that carries the bridge IP (169.254.96.16 by default), which
 * pods use as their DNS server and the proxy listens on. A bridge with no
 * ports, as upstream EdgeMesh uses: it needs no kernel module beyond bridge
 * (some kernels have no `dummy`). Existing links and addresses are reused, so
 * a restarted agent finds its address in place; stop() leaves the link up so
 * queries keep being delivered locally between agent runs, except after a
 * failed start, which deletes a link that start created. `remove()` is for
 * `edgemesh cleanup`.
 */
import { isIPv4, isIPv6 } from 'node:net'
import type { Component, StopOptions } from '../lifecycle/component.ts'
import type { Logger } from '../observability/logger.ts'
import type { HostNet } from './host-net.ts'

export interface BridgeDeviceDeps {
  logger: Logger
  host: HostNet
}

export interface BridgeDeviceInit {
  /** Link name. @default 'edgemesh0' */
  name?: string
  /** Address the link carries (/32, or /128 for IPv6). @default '169.254.96.16' */
  address?: string
}

export class BridgeDevice implements Component {
  readonly name = 'bridge-device'
  readonly device: string
  readonly address: string
  readonly #log: Logger
  readonly #host: HostNet
  #ready = false
  #created = false

  constructor (deps: BridgeDeviceDeps, init: BridgeDeviceInit = {}) {
    this.#log = deps.logger
    this.#host = deps.host
    this.device = init.name ?? 'edgemesh0'
    this.address = init.address ?? '169.254.96.16'
  }

  isReady (): boolean {
    return this.#ready
  }

  async start (): Promise<void> {
    if (!isIPv4(this.address) && !isIPv6(this.address)) throw new RangeError(`bridge device address "${this.address}" is not an IP address`)
    const cidr = `${this.address}/${isIPv4(this.address) ? 32 : 128}`
    let link = await this.#host.link(this.device)
    const created = link === undefined
    if (created) {
      await this.#host.addBridge(this.device)
      this.#created = true
      link = await this.#host.link(this.device)
    }
    const hasAddress = link?.addresses.some(a => a.split('/')[0] === this.address) ?? false
    if (!hasAddress) await this.#host.addAddress(this.device, cidr)
    if (link?.up !== true) await this.#host.setUp(this.device)
    this.#ready = true
    this.#log.info('bridge device ready', { device: this.device, address: cidr, reused: !created, kind: link?.kind ?? 'bridge' })
  }

  /**
   * Leaves the link and its address in place: pods keep their resolver address across restarts.
   * A rollback deletes the link when this run created it: an agent that never served leaves no trace.
   */
  async stop (options: StopOptions = {}): Promise<void> {
    this.#ready = false
    if (options.rollback === true && this.#created) {
      this.#created = false
      await this.remove()
    }
  }

  /** Deletes the link (and its address): `edgemesh cleanup`. */
  async remove (): Promise<void> {
    this.#ready = false
    await this.#host.deleteLink(this.device)
    this.#log.info('bridge device removed', { device: this.device })
  }
}
