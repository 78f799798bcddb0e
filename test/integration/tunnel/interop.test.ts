// Interop with go-libp2p: a Go peer built from Go modules
// (test/interop/go-peer, scripts/tools/build-go-peer.sh) with upstream's
// node-name identity, PSK derivation and /libp2p/tunnel-proxy/1.0.0, against
// our tunnel, both ways. Our side has the data path on: the Go peer does not
// speak it, so proxied connections to it must fall back to the proxy protocol.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import type { Server } from 'node:net'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { createMesh } from '../../../src/app/mesh.ts'
import type { Mesh } from '../../../src/app/mesh.ts'
import type { MeshInit } from '../../../src/app/mesh.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { eventually, toolsBin } from '../../helpers/control-plane.ts'
import { freePort, roundTrip, startEcho } from '../../helpers/net.ts'

const goPeer = join(toolsBin(), 'edgemesh-go-peer')
const skip = existsSync(goPeer) ? {} : { skip: 'needs the Go interop peer (bash scripts/tools/build-go-peer.sh)' }
const PSK = 'edgemesh-ts-test-psk-not-for-any-real-cluster'

describe('interop with a go-libp2p peer (upstream identity, PSK and proxy protocol)', skip, () => {
  let dir: string
  let echo: Server
  let echoPort: number
  const children: ChildProcess[] = []
  const tunnels: Mesh[] = []

  async function serveGo (name: string, psk: string): Promise<{ port: number, peerId: string, output: () => string }> {
    const port = await freePort()
    const child = spawn(goPeer, ['serve', '--name', name, '--listen', String(port), '--psk', psk], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let out = ''
    child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', () => { if (out.includes('\n')) resolve() })
      child.once('exit', code => reject(new Error(`go peer exited ${String(code)}`)))
    })
    return { port, peerId: /\/p2p\/(\w+)/.exec(out)?.[1] ?? '', output: () => out }
  }

  /** Our tunnel, with the Go peer as its relay (so it is dialed at its address), holding no reservation. */
  async function startOurs (nodeName: string, goName: string, goPort: number, extra: Partial<MeshInit> = {}): Promise<Mesh> {
    const ours = createMesh({ logger: noopLogger, metrics: new Registry() }, {
      nodeName,
      listenPort: await freePort(),
      listenAddresses: ['127.0.0.1'],
      relayNodes: [{ nodeName: goName, addresses: [{ host: '127.0.0.1', port: goPort }] }],
      pskFile: join(dir, 'psk'),
      reserve: false,
      ...extra
    })
    tunnels.push(ours)
    await ours.start()
    return ours
  }

  async function goCommand (args: string[]): Promise<{ code: number, out: string }> {
    return await new Promise(resolve => {
      execFile(goPeer, args, { timeout: 30_000 }, (err, stdout, stderr) => { resolve({ code: err === null ? 0 : 1, out: stdout + stderr }) })
    })
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgemesh-interop-'))
    writeFileSync(join(dir, 'psk'), PSK)
    writeFileSync(join(dir, 'other-psk'), 'not the cluster key, but long enough')
    ;({ server: echo, port: echoPort } = await startEcho('echo:'))
  })

  after(async () => {
    for (const t of tunnels) await t.stop()
    for (const c of children) c.kill('SIGKILL')
    echo.close()
    rmSync(dir, { recursive: true, force: true })
  })

  test('our agent reaches an endpoint through the Go peer, and the Go peer through ours', async () => {
    const go = await serveGo('go-b', join(dir, 'psk'))
    const ours = await startOurs('ts-a', 'go-b', go.port, { dataPath: { port: 0 } })
    // TypeScript → Go: the PeerID derived from the node name is the one go-libp2p derives.
    const conn = await ours.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'go-b', service: 'default/echo' })
    assert.equal((await roundTrip(conn, 'from typescript')).toString(), 'echo:from typescript')
    const peer = ours.peers().find(p => p.nodeName === 'go-b')
    assert.equal(peer?.peerId, go.peerId)
    assert.equal(peer?.dataPath, undefined, 'the Go peer has no data path: the proxy protocol carried it')
    const again = await ours.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'go-b', service: 'default/echo' })
    assert.equal((await roundTrip(again, 'twice')).toString(), 'echo:twice')
    // Go → TypeScript.
    const port = Number(/\/tcp\/(\d+)/.exec(ours.addresses().find(a => a.startsWith('/ip4/127.0.0.1/tcp/')) ?? '')?.[1])
    const r = await goCommand(['dial', '--name', 'go-c', '--psk', join(dir, 'psk'), '--peer-name', 'ts-a', '--peer-addr', `/ip4/127.0.0.1/tcp/${port}`,
      '--target', `127.0.0.1:${echoPort}`, '--payload', 'from go'])
    assert.equal(r.code, 0, r.out)
    assert.match(r.out, /^reply echo:from go$/m)
  })

  test('upstream\'s discovery handshake both ways: we tell the Go peer our name on connecting, and answer when it asks', async () => {
    const go = await serveGo('go-d', join(dir, 'psk'))
    const ours = await startOurs('ts-d', 'go-d', go.port)
    // Once connected and identified, we tell the Go peer our name (it cannot derive a non-relay's PeerID).
    await eventually('the Go peer heard our name', () => go.output().includes(`discovery from ts-d ${ours.peerId() as string}`), 10_000, 50)
    // The Go side asks; we answer with our name.
    const port = Number(/\/tcp\/(\d+)/.exec(ours.addresses().find(a => a.startsWith('/ip4/127.0.0.1/tcp/')) ?? '')?.[1])
    const r = await goCommand(['discover', '--name', 'go-e', '--psk', join(dir, 'psk'), '--peer-name', 'ts-d', '--peer-addr', `/ip4/127.0.0.1/tcp/${port}`])
    assert.equal(r.code, 0, r.out)
    assert.match(r.out, new RegExp(`^discovered ts-d ${ours.peerId() as string}$`, 'm'))
  })

  test('a Go peer with another PSK is not reached', async () => {
    const go = await serveGo('go-x', join(dir, 'other-psk'))
    const ours = await startOurs('ts-x', 'go-x', go.port, { dialTimeoutMs: 3000 })
    await assert.rejects(ours.dialTcp({ ip: '127.0.0.1', port: echoPort, nodeName: 'go-x', service: 'default/echo' }))
    const probes = await ours.probeRelays(3000)
    assert.equal(probes[0]?.ok, false)
    assert.equal(probes[0]?.reason, 'psk')
  })
})
