// `edgemesh cleanup` reports what it removed, and "nothing to remove" for
// what was not there.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { PassThrough } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { runCleanup } from '../../../src/cli/cleanup.ts'
import type { CleanupDeps } from '../../../src/cli/cleanup.ts'
import type { CommandIO } from '../../../src/cli/io.ts'
import { HostCommandError } from '../../../src/net/index.ts'
import { InterceptionError, IPTABLES_CHAIN, TABLE } from '../../../src/proxy/index.ts'
import { CNI_IPTABLES_CHAIN } from '../../../src/cni/host-rules.ts'

interface Node { table: boolean, chain: boolean, jumps: number, device: boolean, transactions: string[], cniChain?: boolean, cniJumps?: number }

/** Runners over an in-memory node, answering the way nft, iptables and ip do. */
function fakes (node: Node): Required<CleanupDeps> {
  return {
    nft: async (args, script) => {
      const cmd = args.join(' ')
      if (cmd === `list table ip ${TABLE}`) {
        if (node.table) return `table ip ${TABLE} {\n}\n`
        throw new InterceptionError(`nft ${cmd} exited with 1`, `Error: No such file or directory\nlist table ip ${TABLE}\n`)
      }
      if (cmd === '-f -') {
        node.transactions.push(script ?? '')
        for (const line of (script ?? '').split('\n')) {
          if (line === `add table ip ${TABLE}`) node.table = true
          if (line === `delete table ip ${TABLE}`) node.table = false
        }
        return ''
      }
      throw new Error(`unexpected nft ${cmd}`)
    },
    iptables: async (argv) => {
      const [cmd, ...rest] = argv
      if (cmd === 'iptables-nft-save') return node.chain ? `*nat\n:${IPTABLES_CHAIN} - [0:0]\n-A PREROUTING -j ${IPTABLES_CHAIN}\nCOMMIT\n` : '*nat\nCOMMIT\n'
      if (cmd !== 'iptables-nft') throw new InterceptionError(`${cmd as string} not found (install iptables)`, '')
      if (rest.includes(CNI_IPTABLES_CHAIN)) {
        if (rest.includes('-S') && node.cniChain !== true) throw new InterceptionError('iptables: No chain/target/match by that name', '')
        if (rest.includes('-D')) {
          if ((node.cniJumps ?? 0) === 0) throw new InterceptionError('iptables: Bad rule', '')
          node.cniJumps = (node.cniJumps ?? 0) - 1
        }
        if (rest.includes('-X')) node.cniChain = false
        return ''
      }
      if (rest.includes('-D')) {
        if (node.jumps === 0) throw new InterceptionError('iptables: Bad rule', '')
        node.jumps--
      }
      if (rest.includes('-X')) node.chain = false
      return ''
    },
    ip: async (argv) => {
      const cmd = argv.join(' ')
      if (cmd === 'ip -j -d addr show dev edgemesh0') {
        if (node.device) return JSON.stringify([{ ifname: 'edgemesh0', flags: ['UP'], linkinfo: { info_kind: 'dummy' }, addr_info: [{ local: '169.254.96.16', prefixlen: 32 }] }])
        throw new HostCommandError(argv, 'exit code 1', 'Device "edgemesh0" does not exist.')
      }
      if (cmd === 'ip link del edgemesh0') { node.device = false; return '' }
      throw new Error(`unexpected ${cmd}`)
    }
  }
}

async function cleanup (node: Node): Promise<{ code: number, out: string, err: string }> {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
  const io: CommandIO = { stdout, stderr, env: {}, shutdown: { requested: new AbortController().signal, force: new AbortController().signal } }
  const code = await runCleanup([], io, fakes(node))
  return { code, out, err }
}

describe('edgemesh cleanup', () => {
  test('on a clean node it removes nothing and says so', async () => {
    const node: Node = { table: false, chain: false, jumps: 0, device: false, transactions: [] }
    const r = await cleanup(node)
    assert.equal(r.code, 0, r.err)
    assert.doesNotMatch(r.out, /removed/)
    assert.deepEqual(r.out.split('\n'), [
      `no nftables table ip ${TABLE}: nothing to remove`,
      `no iptables chain nat/${IPTABLES_CHAIN}: nothing to remove`,
      `no iptables chain nat/${CNI_IPTABLES_CHAIN}: nothing to remove`,
      'no interface edgemesh0: nothing to remove',
      'nothing to remove: EdgeMesh left nothing on this node',
      ''
    ])
    assert.deepEqual(node.transactions, [], 'no nft transaction when there is no table')
  })

  test('names each thing it removed', async () => {
    const node: Node = { table: true, chain: true, jumps: 2, device: true, transactions: [], cniChain: true, cniJumps: 1 }
    const r = await cleanup(node)
    assert.equal(r.code, 0, r.err)
    assert.deepEqual(r.out.split('\n'), [
      `removed nftables table ip ${TABLE}`,
      `removed iptables chain nat/${IPTABLES_CHAIN}`,
      `removed iptables chain nat/${CNI_IPTABLES_CHAIN}`,
      'removed interface edgemesh0',
      ''
    ])
    assert.deepEqual({ table: node.table, chain: node.chain, jumps: node.jumps, device: node.device, cniChain: node.cniChain, cniJumps: node.cniJumps }, { table: false, chain: false, jumps: 0, device: false, cniChain: false, cniJumps: 0 })
  })

  test('only the table there: removes it, the rest is absent', async () => {
    const node: Node = { table: true, chain: false, jumps: 0, device: false, transactions: [] }
    const r = await cleanup(node)
    assert.equal(r.code, 0, r.err)
    assert.deepEqual(r.out.split('\n'), [
      `removed nftables table ip ${TABLE}`,
      `no iptables chain nat/${IPTABLES_CHAIN}: nothing to remove`,
      `no iptables chain nat/${CNI_IPTABLES_CHAIN}: nothing to remove`,
      'no interface edgemesh0: nothing to remove',
      ''
    ])
    assert.equal(node.table, false)
  })

  // The CLI against the real tools, in a network namespace of its own.
  const entry = fileURLToPath(new URL('../../../src/bin/edgemesh.ts', import.meta.url))
  const canNft = process.getuid?.() === 0 && spawnSync('unshare', ['-n', 'nft', 'list', 'tables']).status === 0
  test('real nft and ip: twice in a row', { skip: canNft ? false : 'needs root, unshare and nft' }, () => {
    const env = { ...process.env }
    delete env.NODE_TEST_CONTEXT
    const script = `nft add table ip ${TABLE} && ip link add edgemesh0 type bridge && "$0" "$1" cleanup && echo --- && "$0" "$1" cleanup && nft list tables`
    const r = spawnSync('unshare', ['-n', 'sh', '-c', script, process.execPath, entry], { encoding: 'utf8', env })
    assert.equal(r.status, 0, r.stderr)
    const [first, second] = r.stdout.split('---\n') as [string, string]
    assert.match(first, new RegExp(`^removed nftables table ip ${TABLE}$`, 'm'))
    assert.match(first, /^removed interface edgemesh0$/m)
    assert.match(second, new RegExp(`^no nftables table ip ${TABLE}: nothing to remove$`, 'm'))
    assert.match(second, /^no interface edgemesh0: nothing to remove$/m)
    assert.doesNotMatch(second, /removed/)
  })
})
