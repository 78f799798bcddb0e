/**
 * The seam between the agent and the host's network configuration. The real
 * implementation runs `ip` (iproute2); tests without root use the no-op twin
 * and serve on an address the host already has (127.0.0.1).
 */
import { execFile } from 'node:child_process'
import { HostCommandError } from './errors.ts'

export interface LinkState {
  /** Link type from `ip -d link` (`bridge`, `dummy`, …), '' when unknown. */
  kind: string
  up: boolean
  /** Addresses as `ip/prefix`. */
  addresses: string[]
}

export interface HostNet {
  /** The link's state, or undefined when there is no such link. */
  link (name: string): Promise<LinkState | undefined>
  addBridge (name: string): Promise<void>
  addAddress (name: string, cidr: string): Promise<void>
  setUp (name: string): Promise<void>
  deleteLink (name: string): Promise<void>
}

/** Runs a command; resolves stdout, rejects HostCommandError naming the command. */
export type CommandRunner = (argv: readonly string[]) => Promise<string>

export const execRunner: CommandRunner = async (argv) => await new Promise((resolve, reject) => {
  execFile(argv[0] as string, argv.slice(1), { timeout: 10_000 }, (err, stdout, stderr) => {
    if (err === null) { resolve(stdout); return }
    const e = err as NodeJS.ErrnoException & { code?: string | number }
    const detail = e.code === 'ENOENT' ? `${argv[0] as string} not found (install iproute2)` : typeof e.code === 'number' ? `exit code ${e.code}` : e.message
    reject(new HostCommandError(argv, detail, stderr, { cause: err }))
  })
})

interface IpLink { ifname: string, flags?: string[], linkinfo?: { info_kind?: string }, addr_info?: Array<{ local?: string, prefixlen?: number }> }

/** HostNet over iproute2 (`ip -j`). Needs CAP_NET_ADMIN. */
export class IpHostNet implements HostNet {
  readonly #run: CommandRunner

  constructor (run: CommandRunner = execRunner) {
    this.#run = run
  }

  async link (name: string): Promise<LinkState | undefined> {
    let out: string
    try {
      out = await this.#run(['ip', '-j', '-d', 'addr', 'show', 'dev', name])
    } catch (err) {
      if (err instanceof HostCommandError && /does not exist|Cannot find device/i.test(err.stderr)) return undefined
      throw err
    }
    const links = JSON.parse(out === '' ? '[]' : out) as IpLink[]
    const l = links[0]
    if (l === undefined) return undefined
    return {
      kind: l.linkinfo?.info_kind ?? '',
      up: (l.flags ?? []).includes('UP'),
      addresses: (l.addr_info ?? []).filter(a => a.local !== undefined).map(a => `${a.local as string}/${a.prefixlen ?? 32}`)
    }
  }

  async addBridge (name: string): Promise<void> {
    await this.#tolerate(['ip', 'link', 'add', name, 'type', 'bridge'], /File exists/)
  }

  async addAddress (name: string, cidr: string): Promise<void> {
    await this.#tolerate(['ip', 'addr', 'add', cidr, 'dev', name], /File exists/)
  }

  async setUp (name: string): Promise<void> {
    await this.#run(['ip', 'link', 'set', name, 'up'])
  }

  async deleteLink (name: string): Promise<void> {
    await this.#tolerate(['ip', 'link', 'del', name], /does not exist|Cannot find device/)
  }

  /** Another process (an old agent) may win the race: "already there" is success. */
  async #tolerate (argv: string[], ok: RegExp): Promise<void> {
    try {
      await this.#run(argv)
    } catch (err) {
      if (err instanceof HostCommandError && ok.test(err.stderr)) return
      throw err
    }
  }
}

/** For tests without root: reports every link as present and up, changes nothing. */
export class NoopHostNet implements HostNet {
  async link (): Promise<LinkState> { return { kind: '', up: true, addresses: [] } }
  async addBridge (): Promise<void> {}
  async addAddress (): Promise<void> {}
  async setUp (): Promise<void> {}
  async deleteLink (): Promise<void> {}
}
