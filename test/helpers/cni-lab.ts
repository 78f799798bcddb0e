/**
 * The seed lab with a real kube-apiserver and the edge CNI on: a cloud node
 * (the relay), two nodes on edge site A (cone NAT) and one on edge site B
 * (symmetric NAT). Each agent claims a pod block through the API, and each
 * node gets one pod from it through `edgemesh cni`, as a runtime would call
 * the plugin. Used by test/e2e/cni/routing.test.ts and bench/cni.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Lab, seed } from '../lab/index.ts'
import type { LabProcess, RunResult } from '../lab/index.ts'
import { run } from '../lab/netns.ts'
import { waitFor } from '../e2e/lab/helpers.ts'
import { startControlPlane } from './control-plane.ts'
import type { ControlPlane } from './control-plane.ts'
import { bridgeApiIntoNetns } from './api-bridge.ts'
import type { ApiBridge } from './api-bridge.ts'
import type { StatusDocument } from '../../src/observability/status.ts'

export const CNI_NODES = ['k8s-master', 'edge-a1', 'edge-a2', 'edge-b1'] as const
export type CniNode = typeof CNI_NODES[number]
export const EDGE_NODES = new Set<CniNode>(['edge-a1', 'edge-a2', 'edge-b1'])
const PSK = 'edgemesh-ts-test-psk-not-for-any-real-cluster'

export interface CniLab {
  lab: Lab
  cp: ControlPlane
  dir: string
  pods: Map<CniNode, { netns: string, ip: string }>
  status: (node: CniNode) => Promise<StatusDocument | undefined>
  /** Runs `argv` in the pod's network namespace. */
  inPod: (node: CniNode, argv: string[]) => Promise<RunResult>
  /**
   * Stops a node's agent (SIGTERM, as a rollout does), runs `whileDown`,
   * and starts it again: the milliseconds the stop and the start took
   * (until it logged `running`), not counting `whileDown`.
   */
  restartAgent: (node: CniNode, whileDown?: () => Promise<void>) => Promise<number>
  stop: () => Promise<void>
}

export interface CniLabOptions {
  /** The command that runs `edgemesh` (node and the entry or the bundle, with its flags). */
  edgemesh: string[]
  env?: Record<string, string>
  /** Modules' YAML besides the tunnel and the edge CNI. @default DNS and proxy off */
  modules?: string[]
}

export async function startCniLab (options: CniLabOptions): Promise<CniLab> {
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-cni-lab-'))
  const pods = new Map<CniNode, { netns: string, ip: string }>()
  const agents = new Map<CniNode, LabProcess>()
  let cp: ControlPlane | undefined
  let lab: Lab | undefined
  let bridge: ApiBridge | undefined
  const stop = async (): Promise<void> => {
    await lab?.down()
    await bridge?.stop()
    for (const { netns } of pods.values()) await run(['ip', 'netns', 'del', netns])
    await cp?.stop()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await writeFile(join(dir, 'psk'), PSK, { mode: 0o600 })
    cp = await startControlPlane()
    await cp.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kubeedge' } })
    for (const node of CNI_NODES) {
      await cp.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: EDGE_NODES.has(node) ? { 'node-role.kubernetes.io/edge': '' } : {} } })
    }
    const theLab = lab = await Lab.up(seed, { id: Lab.newId() })
    bridge = await bridgeApiIntoNetns(Number(new URL(cp.server).port), CNI_NODES.map(n => theLab.netns(n)), dir)
    const status = async (node: CniNode): Promise<StatusDocument | undefined> => {
      const r = await theLab.exec(node, ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:10551/status'])
      return r.code === 0 && r.stdout !== '' ? JSON.parse(r.stdout) as StatusDocument : undefined
    }
    for (const node of CNI_NODES) {
      const state = join(dir, node)
      await mkdir(state)
      await writeFile(join(state, 'agent.yaml'), [
        `kubeAPIConfig: {kubeConfig: ${cp.kubeconfigPath}}`,
        `commonConfig: {stateDir: ${state}}`,
        'modules:',
        ...(options.modules ?? ['  edgeDNS: {enable: false}', '  edgeProxy: {enable: false}']),
        '  edgeTunnel:',
        '    enable: true',
        `    psk: {path: ${join(dir, 'psk')}}`,
        '    relayNodes:',
        '    - {nodeName: k8s-master, advertiseAddress: [203.0.113.10]}',
        '  edgeCNI:',
        '    enable: true',
        '    meshCIDRConfig: {cloudCIDR: [10.244.0.0/18], edgeCIDR: [10.244.64.0/18]}',
        ''
      ].join('\n'))
    }
    const startAgent = async (node: CniNode): Promise<void> => {
      const p = theLab.spawn(node, [...options.edgemesh, 'agent', '--config-file', join(dir, node, 'agent.yaml')], { env: { NAMESPACE: 'kubeedge', ...options.env }, name: 'agent' })
      agents.set(node, p)
      await p.waitForOutput('"msg":"running"', 30_000)
    }
    for (const node of CNI_NODES) await startAgent(node)
    const restartAgent = async (node: CniNode, whileDown?: () => Promise<void>): Promise<number> => {
      let started = Date.now()
      await agents.get(node)?.stop({ graceMs: 10_000 })
      const stopped = Date.now()
      await whileDown?.()
      started += Date.now() - stopped
      await startAgent(node)
      return Date.now() - started
    }
    // Every node claims a block and routes the other three to edge_tun0.
    for (const node of CNI_NODES) {
      await waitFor(`${node} routes the other nodes' blocks`, async () => (await status(node))?.cni?.routes?.length === CNI_NODES.length - 1, 30_000)
    }
    for (const node of CNI_NODES) {
      const netns = `emcl${process.pid % 100_000}-${node}`
      const added = await run(['ip', 'netns', 'add', netns])
      if (added.code !== 0) throw new Error(`ip netns add ${netns}: ${added.stderr}`)
      pods.set(node, { netns, ip: '' })
      const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'edgemesh', type: 'edgemesh-cni', subnetFile: join(dir, node, 'cni-block.json'), bridge: 'emcni0', dataDir: join(dir, node, 'leases') })
      const r = await theLab.exec(node, [...options.edgemesh, 'cni'], {
        input: conf,
        env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: `pod-${node}`, CNI_NETNS: `/var/run/netns/${netns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' }
      })
      if (r.code !== 0) throw new Error(`edgemesh cni ADD on ${node}: ${r.stdout}${r.stderr}`)
      const ip = (JSON.parse(r.stdout) as { ips: Array<{ address: string }> }).ips[0]?.address.split('/')[0] as string
      pods.set(node, { netns, ip })
    }
    const inPod = async (node: CniNode, argv: string[]): Promise<RunResult> =>
      await run(['ip', 'netns', 'exec', pods.get(node)?.netns as string, ...argv], { timeoutMs: 60_000 })
    return { lab: theLab, cp, dir, pods, status, inPod, restartAgent, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
