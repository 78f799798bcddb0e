// Discovery with a Go EdgeMesh on the same LAN: the go-libp2p interop peer
// (test/interop/go-peer) runs go-libp2p's mDNS and dual DHT under upstream's
// rendezvous on edge-a2; our agent runs with edgeTunnel.mdns and
// edgeTunnel.dht on edge-a1 (site A of the seed lab). Each must find the
// other both ways, connect, and exchange node names over
// /libp2p/tunnel-discovery/1.0.0, as a Go EdgeMesh does with Go peers.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Lab, seed } from '../../lab/index.ts'
import type { LabProcess } from '../../lab/index.ts'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { compatSeed } from '../../../src/tunnel/identity.ts'
import { toolsBin } from '../../helpers/control-plane.ts'
import { isRoot, waitFor } from '../lab/helpers.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const entry = join(root, 'src/bin/edgemesh.ts')
const goPeer = join(toolsBin(), 'edgemesh-go-peer')
const PSK = 'edgemesh-ts-test-psk-not-for-any-real-cluster'
const skip = !isRoot ? { skip: 'needs root' } : !existsSync(goPeer) ? { skip: 'needs the Go interop peer (bash scripts/tools/build-go-peer.sh)' } : {}

/** A node's PeerID in compat mode (upstream's derivation from the name). */
async function compatPeerId (nodeName: string): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', compatSeed(nodeName))).toString()
}

describe('discovery interop: our agent and a go-libp2p peer find each other on a LAN, by mDNS and by the DHT', skip, () => {
  let lab: Lab
  let dir: string
  let agent: LabProcess
  let go: LabProcess

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgemesh-mdns-interop-'))
    const psk = join(dir, 'psk')
    await writeFile(psk, PSK)
    await writeFile(join(dir, 'services.yaml'), '')
    const config = join(dir, 'agent.yaml')
    await writeFile(config, [
      'kubeAPIConfig:', `  standaloneFile: ${join(dir, 'services.yaml')}`,
      'commonConfig:', `  stateDir: ${join(dir, 'state')}`,
      'modules:',
      '  edgeDNS: {enable: false}',
      '  edgeProxy: {enable: false}',
      '  edgeTunnel:',
      '    enable: true',
      `    psk: {path: ${psk}}`,
      '    mdns: {enable: true}',
      '    dht: {enable: true}',
      '    finderPeriod: 2',
      ''
    ].join('\n'))
    lab = await Lab.up(seed, { id: Lab.newId() })
    const bootstrap = `/ip4/192.168.1.11/tcp/20006/p2p/${await compatPeerId('edge-a1')}`
    go = lab.spawn('edge-a2', [goPeer, 'serve', '--name', 'go-lan', '--psk', psk, '--listen', '20006', '--listen-ip', '0.0.0.0', '--mdns', 'EDGEMESH_PLAYGOUND', '--dht', 'EDGEMESH_PLAYGOUND', '--bootstrap', bootstrap], { name: 'go-peer' })
    await go.waitForOutput('listening', 10_000)
    agent = lab.spawn('edge-a1', [process.execPath, entry, 'agent', '--config-file', config], { env: { NAMESPACE: 'kubeedge' }, name: 'agent' })
    await agent.waitForOutput('"msg":"running"', 20_000)
  })

  after(async () => {
    await lab?.down()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('mDNS: each finds the other, and both learn the other\'s node name', async () => {
    const ours = await compatPeerId('edge-a1')
    const theirs = await compatPeerId('go-lan')
    // The Go side, as upstream: found by mDNS, connected, told our name in the discovery reply.
    await waitFor('the Go peer finds us by mDNS', async () => (await go.output()).includes(`found ${ours} by MDNS`), 25_000)
    await waitFor('the Go peer learns our name', async () => (await go.output()).includes(`discovered edge-a1 ${ours}`), 25_000)
      .catch(async (err: Error) => { throw new Error(`${err.message}\ngo peer:\n${(await go.output()).slice(-3000)}\nagent:\n${(await agent.output()).slice(-3000)}`) })
    // Ours: the Go peer's announcement found, and our name sent to it when identify shows a Go peer.
    await waitFor('our agent finds the Go peer', async () => new RegExp(`"msg":"peer found on the LAN"[^\\n]*${theirs}|${theirs}[^\\n]*"msg":"peer found on the LAN"`).test(await agent.output()), 25_000)
    await waitFor('the Go peer hears our name from us', async () => (await go.output()).includes(`discovery from edge-a1 ${ours}`), 15_000)
    // Only LAN addresses were kept: the Go peer's loopback announcement is not used.
    const found = (await agent.output()).split('\n').find(l => l.includes('peer found on the LAN') && l.includes(theirs)) ?? ''
    assert.match(found, /192\.168\.1\.12/)
    assert.doesNotMatch(found, /127\.0\.0\.1/)
  })

  test('DHT: each reads the other\'s provider record for the rendezvous', async () => {
    const ours = await compatPeerId('edge-a1')
    const theirs = await compatPeerId('go-lan')
    await waitFor('our agent advertises the rendezvous', async () => (await agent.output()).includes('"msg":"rendezvous advertised on the DHT"'), 30_000)
    await waitFor('the Go peer finds us on the DHT', async () => (await go.output()).includes(`found ${ours} by DHT`), 30_000)
      .catch(async (err: Error) => { throw new Error(`${err.message}\ngo peer:\n${(await go.output()).slice(-3000)}`) })
    await waitFor('our agent finds the Go peer on the DHT', async () => new RegExp(`"msg":"peer found on the DHT"[^\\n]*${theirs}|${theirs}[^\\n]*"msg":"peer found on the DHT"`).test(await agent.output()), 30_000)
      .catch(async (err: Error) => { throw new Error(`${err.message}\nagent:\n${(await agent.output()).slice(-3000)}`) })
  })
})
