/**
 * Addresses leased from the node's block, on disk in host-local's layout
 * (`<dataDir>/<network>/<ip>` holding `<containerId>\r\n<ifName>`, and
 * `last_reserved_ip.0`), so leases survive restarts and the reference
 * plugins' tools read them. A lease is taken by creating its file
 * exclusively: concurrent ADDs never get one address twice.
 */
import { mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isIPv4 } from 'node:net'
import type { Subnet } from './config.ts'
import { inSubnet } from './config.ts'
import { ipv4ToNumber, numberToIpv4 } from '../net/ipv4.ts'
import { CniError, CNI_IO_FAILURE, CNI_RANGE_FULL } from './errors.ts'

const LAST = 'last_reserved_ip.0'

export class LeaseStore {
  readonly #dir: string
  readonly #subnet: Subnet
  readonly #gateway: string

  constructor (dataDir: string, network: string, subnet: Subnet, gateway: string) {
    this.#dir = join(dataDir, network)
    this.#subnet = subnet
    this.#gateway = gateway
  }

  /** The address leased to this container and interface, if any. */
  async find (containerId: string, ifName: string): Promise<string | undefined> {
    for (const [ip, owner] of await this.#leases()) if (owner === `${containerId}\r\n${ifName}`) return ip
    return undefined
  }

  /** Leases the next free address after the last one leased (host-local's round robin); the same one again for the same owner. */
  async allocate (containerId: string, ifName: string): Promise<string> {
    const existing = await this.find(containerId, ifName)
    if (existing !== undefined) return existing
    await mkdir(this.#dir, { recursive: true, mode: 0o755 })
    const first = this.#subnet.network + 1
    const size = 2 ** (32 - this.#subnet.prefix) - 2
    const last = await readFile(join(this.#dir, LAST), 'utf8').then(s => s.trim(), () => '')
    const start = inSubnet(this.#subnet, last) ? (ipv4ToNumber(last) ?? first) - first + 1 : 0
    for (let i = 0; i < size; i++) {
      const ip = numberToIpv4(first + ((start + i) % size))
      if (ip === this.#gateway) continue
      try {
        const f = await open(join(this.#dir, ip), 'wx', 0o644)
        await f.writeFile(`${containerId}\r\n${ifName}`)
        await f.close()
        await writeFile(join(this.#dir, LAST), ip)
        return ip
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue
        throw new CniError(CNI_IO_FAILURE, `cannot write a lease in ${this.#dir}: ${(err as Error).message}`, undefined, { cause: err })
      }
    }
    throw new CniError(CNI_RANGE_FULL, `no free address in ${this.#subnet.cidr}: all ${size - 1} are leased (see ${this.#dir})`)
  }

  /** Releases what this container and interface hold; nothing held is not an error (DEL is idempotent). */
  async release (containerId: string, ifName: string): Promise<string[]> {
    const released: string[] = []
    for (const [ip, owner] of await this.#leases()) {
      if (owner !== `${containerId}\r\n${ifName}`) continue
      await rm(join(this.#dir, ip), { force: true })
      released.push(ip)
    }
    return released
  }

  /** Every lease: address, container and interface. */
  async owners (): Promise<Array<{ ip: string, containerId: string, ifName: string }>> {
    return (await this.#leases()).map(([ip, owner]) => {
      const [containerId = '', ifName = ''] = owner.split('\r\n')
      return { ip, containerId, ifName }
    })
  }

  async #leases (): Promise<Array<[string, string]>> {
    let names: string[]
    try {
      names = await readdir(this.#dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw new CniError(CNI_IO_FAILURE, `cannot read leases in ${this.#dir}: ${(err as Error).message}`, undefined, { cause: err })
    }
    const out: Array<[string, string]> = []
    for (const name of names.filter(n => isIPv4(n))) {
      // host-local wrote `<id>` alone before v1.0, and `<id>\n<ifname>` for a while.
      const text = await readFile(join(this.#dir, name), 'utf8').catch(() => '')
      out.push([name, text.replace(/\r?\n/, '\r\n').trim()])
    }
    return out
  }
}
