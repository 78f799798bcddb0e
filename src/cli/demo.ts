import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { createSocket } from 'node:dgram'
import dnsPacket from 'dns-packet'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parseConfig } from '../config/load.ts'
import { createAgent } from '../app/agent.ts'
import type { App } from '../app/agent.ts'
import { generatePsk } from '../mesh/psk.ts'
import { createLogger } from '../observability/logger.ts'
import type { ServiceEntry } from '../servicemap/types.ts'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './io.ts'
import type { CommandIO } from './io.ts'
import { dataPathLabel } from './status.ts'
import { byCodeUnits } from '../order.ts'

/** examples/ sits two levels above src/cli and one above dist/: look upwards. */
function defaultServicesFile (): string {
  for (const up of ['../../', '../', '../../../']) {
    const candidate = fileURLToPath(new URL(`${up}examples/standalone/services.yaml`, import.meta.url))
    if (existsSync(candidate)) return candidate
  }
  return fileURLToPath(new URL('../../examples/standalone/services.yaml', import.meta.url))
}

const HELP = `Usage: edgemesh demo [--services FILE] [--once]

Runs a small mesh on this machine, with no cluster and no root: a relay and
two edge agents on 127.0.0.1, Services from a YAML file (default:
examples/standalone/services.yaml) plus a "hostname" backend on the second
edge agent. Shows the service map, a DNS answer from the first edge agent,
requests from the first edge agent crossing the relay to the backend, and
the peer table; then waits for Ctrl-C.

  --services FILE   the standalone services file
  --once            show it once and exit
`

const DEMO_NS = 'demo'
const CLUSTER_IP = '10.96.0.10'
const SERVICE_PORT = 12345

/** The demo's own service: its only endpoint is the backend on demo-edge-2. */
function hostnameService (backendPort: number): string {
  return `---
apiVersion: v1
kind: Service
metadata: {name: hostname-svc, namespace: ${DEMO_NS}}
spec: {clusterIP: ${CLUSTER_IP}, ports: [{name: http, port: ${SERVICE_PORT}, protocol: TCP, targetPort: 9376}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: hostname-svc-1, namespace: ${DEMO_NS}, labels: {kubernetes.io/service-name: hostname-svc}}
addressType: IPv4
ports: [{name: http, port: ${backendPort}, protocol: TCP}]
endpoints:
- {addresses: [127.0.0.1], conditions: {ready: true}, nodeName: demo-edge-2}
`
}

async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise(resolve => s.close(resolve))
  return port
}

/** One A query to a DNS server on loopback. */
async function resolveA (port: number, name: string): Promise<string[]> {
  const socket = createSocket('udp4')
  try {
    return await new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no DNS answer from 127.0.0.1:${port}`)), 3000)
      socket.on('message', msg => {
        clearTimeout(timer)
        const answer = dnsPacket.decode(msg)
        resolve((answer.answers ?? []).filter(a => a.type === 'A').map(a => String((a as { data: unknown }).data)))
      })
      socket.send(dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), port, '127.0.0.1')
    })
  } finally {
    socket.close()
  }
}

async function httpGet (port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { host: `hostname-svc:${SERVICE_PORT}` }, signal: AbortSignal.timeout(5000) })
  return await res.text()
}

function table (rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? []
  return rows.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join('  ')).join('\n') + '\n'
}

/** The service map as a table: what the mesh knows and where endpoints live. */
export function renderServiceTable (entries: Iterable<ServiceEntry>): string {
  const rows = [['SERVICE', 'CLUSTER-IP', 'PORTS', 'ENDPOINTS']]
  for (const e of [...entries].sort((a, b) => byCodeUnits(`${a.service.namespace}/${a.service.name}`, `${b.service.namespace}/${b.service.name}`))) {
    const s = e.service
    rows.push([
      `${s.namespace}/${s.name}`,
      s.headless ? 'None (headless)' : s.externalName !== undefined ? `→ ${s.externalName}` : s.clusterIPs.join(',') || '-',
      s.ports.map(p => `${p.name !== '' ? p.name + ':' : ''}${p.port}/${p.protocol}`).join(',') || '-',
      e.endpoints.filter(ep => ep.ready).map(ep => `${ep.ip}${ep.nodeName !== undefined ? '@' + ep.nodeName : ''}`).join(' ') || '(none ready)'
    ])
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? []
  return rows.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join('  ')).join('\n') + '\n'
}

/** Thrown into the demo's steps when the user asks it to stop. */
class DemoStopped extends Error {}

/** How long each agent may take to stop before the demo exits anyway. */
const STOP_WAIT_MS = 4000

export async function runDemo (argv: string[], io: CommandIO): Promise<number> {
  let values
  try {
    values = parseArgs({ args: argv, options: { services: { type: 'string' }, once: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (err) {
    io.stderr.write(`edgemesh demo: ${(err as Error).message}\n\n${HELP}`)
    return EXIT_USAGE
  }
  if (values.help === true) { io.stdout.write(HELP); return EXIT_OK }
  const file = values.services ?? defaultServicesFile()
  const dir = await mkdtemp(join(tmpdir(), 'edgemesh-demo-'))
  const log = await createLogger({ level: 'warn', destination: io.stderr })
  const apps: App[] = []
  // Ctrl-C stops the demo at any step, a slow agent start included.
  const stopped = new Promise<never>((_resolve, reject) => {
    const s = io.shutdown.requested
    if (s.aborted) reject(new DemoStopped())
    else s.addEventListener('abort', () => reject(new DemoStopped()), { once: true })
  })
  stopped.catch(() => {})
  const step = async <T>(p: Promise<T>): Promise<T> => await Promise.race([p, stopped])
  const backend = process.getBuiltinModule('node:http').createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('demo-edge-2') })
  try {
    let userServices: string
    try {
      userServices = await readFile(file, 'utf8')
    } catch (err) {
      io.stderr.write(`edgemesh demo: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`)
      return EXIT_USAGE
    }
    await new Promise<void>(resolve => backend.listen(0, '127.0.0.1', resolve))
    const backendPort = (backend.address() as { port: number }).port
    const services = join(dir, 'services.yaml')
    await writeFile(services, userServices + '\n' + hostnameService(backendPort))
    await writeFile(join(dir, 'psk'), generatePsk(), { mode: 0o600 })
    const [relayPort, edge1Port, edge2Port, dnsPort] = [await freePort(), await freePort(), await freePort(), await freePort()]
    const dataPorts = [await freePort(), await freePort(), await freePort()]
    const agent = (nodeName: string, tunnelPort: number, modules: Record<string, unknown>): App => {
      const { config } = parseConfig('agent', JSON.stringify({
        kubeAPIConfig: { standaloneFile: services },
        commonConfig: { stateDir: join(dir, nodeName), statusPort: 0, bridgeDeviceIP: '127.0.0.1' },
        modules: {
          edgeDNS: { enable: false },
          edgeTunnel: { enable: true, listenPort: tunnelPort, dataPath: { port: dataPorts[apps.length] }, psk: { path: join(dir, 'psk') }, relayNodes: [{ nodeName: 'demo-relay', advertiseAddress: [`127.0.0.1:${relayPort}`] }] },
          ...modules
        }
      }), { env: io.env })
      const app = createAgent(config, { nodeName, namespace: DEMO_NS, mode: 'ManualMode' }, { logger: log.forComponent(nodeName), env: io.env })
      apps.push(app)
      return app
    }
    const relay = agent('demo-relay', relayPort, {})
    const edge2 = agent('demo-edge-2', edge2Port, {})
    const edge1 = agent('demo-edge-1', edge1Port, { edgeDNS: { enable: true, listenPort: dnsPort }, edgeProxy: { enable: true, interception: 'none' } })
    const out = io.stdout
    out.write('EdgeMesh-TS demo: three agents on 127.0.0.1, no cluster, no root\n\n')
    try {
      // Each agent starts its tunnel and reserves a slot on the relay: a few seconds, shown as they pass.
      for (const [name, app] of [['demo-relay', relay], ['demo-edge-2', edge2], ['demo-edge-1', edge1]] as const) {
        const t0 = performance.now()
        out.write(`starting ${name.padEnd(12)} `)
        await step(app.start())
        out.write(`ready in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
      }
    } catch (err) {
      if (err instanceof DemoStopped) return EXIT_OK
      io.stderr.write(`edgemesh demo: ${(err as Error).message}\n`)
      return EXIT_FAILURE
    }
    const mapSize = edge1.serviceMap.snapshot().size
    out.write(`\n${table([
      ['AGENT', 'ROLE', 'RUNS'],
      ['demo-relay', 'relay', `tunnel :${relayPort}`],
      ['demo-edge-1', 'edge', `tunnel :${edge1Port}, DNS 127.0.0.1:${dnsPort}, proxy`],
      ['demo-edge-2', 'edge', `tunnel :${edge2Port}, "hostname" backend 127.0.0.1:${backendPort}`]
    ])}\nservice map (${mapSize} services: ${mapSize - 1} from ${file}, and ${DEMO_NS}/hostname-svc added by the demo):\n${renderServiceTable(edge1.serviceMap.snapshot().values())}\n`)

    const fqdn = `hostname-svc.${DEMO_NS}.svc.cluster.local`
    out.write(`DNS   ${fqdn} → ${(await step(resolveA(dnsPort, fqdn))).join(', ') || '(no answer)'}   (asked demo-edge-1)\n`)
    // Without interception (no root) the client connects to the proxy listener that the DNAT rule would pick.
    const listeners = (await step(edge1.status())).proxy?.listeners ?? {}
    const listener = listeners[`${CLUSTER_IP}/tcp/${SERVICE_PORT}`]
    if (listener === undefined) throw new Error('demo-edge-1 has no proxy listener for hostname-svc')
    for (let i = 1; i <= 3; i++) {
      const t0 = performance.now()
      let reply: string
      try { reply = await step(httpGet(listener)) } catch (err) {
        if (err instanceof DemoStopped) throw err
        reply = `failed: ${(err as Error).message}`
      }
      out.write(`HTTP  #${i} ${CLUSTER_IP}:${SERVICE_PORT} from demo-edge-1 → "${reply}"   ${(performance.now() - t0).toFixed(1)} ms\n`)
    }
    const peers = (await step(edge1.status())).tunnel?.peers ?? []
    out.write(`\npeers of demo-edge-1 (PATH: libp2p; DATA: the TLS data path the requests took):\n${table([['NODE', 'PEER-ID', 'PATH', 'DATA', 'ADDRESS'],
      ...peers.map(p => [p.nodeName ?? '?', p.peerId, p.path, dataPathLabel(p), p.addresses[0] ?? ''])])}`)

    if (values.once !== true) {
      out.write('\nCtrl-C to stop\n')
      if (!io.shutdown.requested.aborted) {
        await new Promise<void>(resolve => io.shutdown.requested.addEventListener('abort', () => resolve(), { once: true }))
      }
    }
    return EXIT_OK
  } catch (err) {
    if (err instanceof DemoStopped) return EXIT_OK
    throw err
  } finally {
    for (const app of apps.reverse()) {
      await Promise.race([app.stop({ signal: AbortSignal.timeout(3000) }).catch(() => {}), new Promise(resolve => setTimeout(resolve, STOP_WAIT_MS).unref())])
    }
    backend.close()
    await rm(dir, { recursive: true, force: true })
    if (apps.length > 0) io.stdout.write('stopped\n')
  }
}
