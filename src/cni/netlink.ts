/**
 * The links, addresses and routes of one pod, set with iproute2's `ip` (in
 * the image, and on every Linux host). A container's namespace is reached by
 * a symlink under /var/run/netns, so `ip -n` works on any namespace path the
 * runtime hands over, with no nsenter.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, rm, symlink } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { CniError, CNI_NETWORK_SETUP } from './errors.ts'

const NETNS_DIR = '/var/run/netns'

export interface IpResult { code: number, stdout: string, stderr: string }
export type IpRunner = (args: string[]) => Promise<IpResult>

export const runIp: IpRunner = async args => await new Promise(resolve => {
  execFile('ip', args, { timeout: 10_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }))
})

/** The host end of a pod's veth: derived from the container and interface, so DEL finds it without state. */
export function hostVethName (containerId: string, ifName: string): string {
  return `vem${createHash('sha256').update(`${containerId}/${ifName}`).digest('hex').slice(0, 11)}`
}

export class Netlink {
  readonly #ip: IpRunner

  constructor (ip: IpRunner = runIp) {
    this.#ip = ip
  }

  /** Runs `ip`; a failure throws naming the command and what ip said, unless `tolerate` matches its message. */
  async ip (args: string[], tolerate?: RegExp): Promise<IpResult> {
    const r = await this.#ip(args)
    if (r.code !== 0 && (tolerate === undefined || !tolerate.test(r.stderr))) {
      throw new CniError(CNI_NETWORK_SETUP, `ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`)
    }
    return r
  }

  /** The bridge, up, with the gateway address. */
  async ensureBridge (bridge: string, gatewayCidr: string, mtu: number): Promise<void> {
    await this.ip(['link', 'add', 'name', bridge, 'type', 'bridge'], /File exists/)
    await this.ip(['link', 'set', bridge, 'mtu', String(mtu), 'up'])
    await this.ip(['addr', 'replace', gatewayCidr, 'dev', bridge])
  }

  /** Runs `fn` with a name `ip -n` accepts for the namespace at `path`. */
  async inNamespace<T> (path: string, fn: (ns: string) => Promise<T>): Promise<T> {
    if (dirname(path) === NETNS_DIR) return await fn(basename(path))
    const name = `emcni-${createHash('sha256').update(path).digest('hex').slice(0, 12)}`
    await mkdir(NETNS_DIR, { recursive: true })
    await rm(`${NETNS_DIR}/${name}`, { force: true })
    await symlink(path, `${NETNS_DIR}/${name}`)
    try {
      return await fn(name)
    } finally {
      await rm(`${NETNS_DIR}/${name}`, { force: true })
    }
  }

  /** `{ mac, addresses }` of a link, or undefined when there is none. */
  async link (name: string, ns?: string): Promise<{ mac: string, addresses: string[], master?: string } | undefined> {
    const r = await this.#ip([...(ns !== undefined ? ['-n', ns] : []), '-j', 'addr', 'show', 'dev', name])
    if (r.code !== 0) return undefined
    const [l] = JSON.parse(r.stdout) as Array<{ address: string, master?: string, addr_info?: Array<{ family: string, local: string, prefixlen: number }> }>
    if (l === undefined) return undefined
    return { mac: l.address, addresses: (l.addr_info ?? []).filter(a => a.family === 'inet').map(a => `${a.local}/${a.prefixlen}`), ...(l.master !== undefined ? { master: l.master } : {}) }
  }
}
