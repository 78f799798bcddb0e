/**
 * The edge CNI's rules in the host's nat table: pod packets to other nodes
 * keep their source address, and this node's pods reach what is outside the
 * mesh. One chain of our own, `EDGEMESH-CNI`, jumped to first from
 * POSTROUTING:
 *
 *   -o edge_tun0 -j ACCEPT          a packet for another node's pods is
 *                                   NATed by nobody: ACCEPT ends the nat
 *                                   table's POSTROUTING, so another CNI's
 *                                   MASQUERADE (flannel's, for destinations
 *                                   outside its own network) never sees it,
 *                                   and the far node's anti-spoofing check
 *                                   sees the pod's address
 *   -d <mesh CIDR> -j RETURN        (each) other rules decide, as before
 *   -s <block> -j MASQUERADE        pods of a block we assigned (no cluster
 *                                   CNI does it for them) to anything else:
 *                                   the node's LAN, the internet
 *
 * iptables, not nftables: an nftables table of our own cannot stop a rule in
 * iptables' nat table from masquerading; a rule first in that chain can. The
 * backend is the one already holding rules, as for the proxy's fallback.
 * The rules stay when the agent stops (a restart keeps pods' connections);
 * `edgemesh cleanup` removes them.
 */
import { detectBackend } from '../net/iptables-backend.ts'
import type { IptablesBackend } from '../net/iptables-backend.ts'
import { execRunner } from '../net/host-net.ts'
import type { CommandRunner } from '../net/host-net.ts'

export const CNI_IPTABLES_CHAIN = 'EDGEMESH-CNI'
const JUMP = ['-m', 'comment', '--comment', 'edgemesh edge CNI', '-j', CNI_IPTABLES_CHAIN]

export interface HostRuleSet {
  /** The TUN device other nodes' blocks are routed to. */
  device: string
  /** meshCIDRConfig's cloud and edge CIDRs. */
  meshCidrs: readonly string[]
  /** This node's block when its pods get addresses from us (not from a cluster CNI that masquerades for them). */
  masqueradeBlock?: string | undefined
}

/** The chain's rules, as `iptables -t nat` arguments after `-A EDGEMESH-CNI`. */
export function hostRules (set: HostRuleSet): string[][] {
  const rules = [['-o', set.device, '-m', 'comment', '--comment', 'pod packets to other nodes keep their source', '-j', 'ACCEPT']]
  for (const cidr of set.meshCidrs) rules.push(['-d', cidr, '-j', 'RETURN'])
  if (set.masqueradeBlock !== undefined) rules.push(['-s', set.masqueradeBlock, '-m', 'comment', '--comment', 'this node\'s pods to outside the mesh', '-j', 'MASQUERADE'])
  return rules
}

export class HostRules {
  readonly #run: CommandRunner
  #backend: IptablesBackend | undefined
  #applied: string | undefined
  #queue: Promise<void> = Promise.resolve()

  constructor (deps: { run?: CommandRunner } = {}) {
    this.#run = deps.run ?? execRunner
  }

  /** Makes the chain hold exactly the rules of `set`, and POSTROUTING jump to it first. */
  async apply (set: HostRuleSet): Promise<void> {
    const next = this.#queue.then(async () => { await this.#applyNow(set) })
    this.#queue = next.catch(() => {})
    await next
  }

  async #applyNow (set: HostRuleSet): Promise<void> {
    const rules = hostRules(set)
    const key = JSON.stringify(rules)
    if (key === this.#applied) return
    const ipt = await this.#iptables()
    await this.#run([...ipt, '-N', CNI_IPTABLES_CHAIN]).catch(() => {})
    await this.#run([...ipt, '-F', CNI_IPTABLES_CHAIN])
    for (const r of rules) await this.#run([...ipt, '-A', CNI_IPTABLES_CHAIN, ...r])
    const present = await this.#run([...ipt, '-C', 'POSTROUTING', ...JUMP]).then(() => true, () => false)
    if (!present) await this.#run([...ipt, '-I', 'POSTROUTING', '1', ...JUMP])
    this.#applied = key
  }

  /** Whether the chain exists (for `edgemesh cleanup`); false when iptables is not installed. */
  async installed (): Promise<boolean> {
    const ipt = await this.#iptables()
    return await this.#run([...ipt, '-S', CNI_IPTABLES_CHAIN]).then(() => true, () => false)
  }

  /** The jump (every copy) and the chain. */
  async remove (): Promise<void> {
    const ipt = await this.#iptables()
    for (;;) {
      const gone = await this.#run([...ipt, '-D', 'POSTROUTING', ...JUMP]).then(() => false, () => true)
      if (gone) break
    }
    await this.#run([...ipt, '-F', CNI_IPTABLES_CHAIN]).catch(() => {})
    await this.#run([...ipt, '-X', CNI_IPTABLES_CHAIN]).catch(() => {})
    this.#applied = undefined
  }

  async #iptables (): Promise<string[]> {
    this.#backend ??= await detectBackend(this.#run)
    return [this.#backend.iptables, '-w', '5', '-t', 'nat']
  }
}
