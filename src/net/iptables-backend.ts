/**
 * Which iptables a node uses: the nft or the legacy backend, whichever
 * already holds rules (kube-proxy's, a CNI's), as kube-proxy decides it.
 * Rules added with the other one would sit in tables nobody else reads.
 * Used by the proxy's iptables fallback and the edge CNI's host rules.
 */

import type { CommandRunner } from './host-net.ts'

/** An iptables flavour: the command and its save/restore companions. */
export interface IptablesBackend { name: 'nft' | 'legacy' | 'default', iptables: string, save: string, restore: string }

const BACKENDS: IptablesBackend[] = [
  { name: 'nft', iptables: 'iptables-nft', save: 'iptables-nft-save', restore: 'iptables-nft-restore' },
  { name: 'legacy', iptables: 'iptables-legacy', save: 'iptables-legacy-save', restore: 'iptables-legacy-restore' }
]
const DEFAULT_BACKEND: IptablesBackend = { name: 'default', iptables: 'iptables', save: 'iptables-save', restore: 'iptables-restore' }

/**
 * The backend whose nat table already holds rules (kube-proxy's, the
 * distribution's), nft on a tie; plain `iptables` when neither flavoured
 * command exists.
 */
export async function detectBackend (run: CommandRunner): Promise<IptablesBackend> {
  let best: { backend: IptablesBackend, rules: number } | undefined
  for (const backend of BACKENDS) {
    let rules: number
    try {
      rules = (await run([backend.save, '-t', 'nat'])).split('\n').filter(l => l.startsWith('-A ')).length
    } catch {
      continue
    }
    if (best === undefined || rules > best.rules) best = { backend, rules }
  }
  return best?.backend ?? DEFAULT_BACKEND
}
