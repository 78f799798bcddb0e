/**
 * `edgemesh doctor`: the troubleshooting list users run by hand, as one
 * command. Each check says what it looked at and, when it fails, the fix.
 */
import { execFile } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connectWithin } from '../net/connect.ts'
import { ConnectTimeoutError } from '../net/errors.ts'
import { parse as parseYaml } from 'yaml'
import dnsPacket from 'dns-packet'
import { Registry } from 'prom-client'
import type { AgentConfig } from '../config/schema.ts'
import { relayEndpoints } from '../config/relays.ts'
import { noopLogger } from '../observability/logger.ts'
import { EdgeTunnel } from '../tunnel/tunnel.ts'
import { NatDiscovery, NatMetrics } from '../nat/index.ts'
import { KubeClient, RESOURCES, resolveKubeConnection } from '../kube/index.ts'
import { IPTABLES_CHAIN, parseIptables } from '../proxy/iptables.ts'
import { TABLE } from '../proxy/rules.ts'
import { TUN_NAME } from '../cni/router.ts'

export type CheckStatus = 'pass' | 'fail' | 'warn' | 'skip'

export interface CheckResult {
  id: string
  title: string
  status: CheckStatus
  detail: string
  fix?: string
}

export interface DoctorInput {
  config: AgentConfig
  /** edgecore's config, or places to look for it in order (the first that exists is read); none means "not a KubeEdge edge node" and its checks are skipped. */
  edgecorePath: string | readonly string[]
  nodeName: string
  /** Environment for mode detection, KUBECONFIG and in-cluster settings. @default process.env */
  env?: NodeJS.ProcessEnv
  /** Injected for tests. */
  run?: (argv: string[]) => Promise<{ code: number, stdout: string, stderr: string }>
}

const execRun = async (argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await new Promise(resolve => {
  execFile(argv[0] as string, argv.slice(1), { timeout: 10_000 }, (err, stdout, stderr) => {
    resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
  })
})

function get (obj: unknown, path: string[]): unknown {
  let cur = obj
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string, unknown>)[k]
  }
  return cur
}

async function edgecoreChecks (input: DoctorInput): Promise<CheckResult[]> {
  const ip = input.config.commonConfig.bridgeDeviceIP
  const places = typeof input.edgecorePath === 'string' ? [input.edgecorePath] : input.edgecorePath
  let text: string | undefined
  let path = places[0] ?? ''
  for (const place of places) {
    try {
      text = await readFile(place, 'utf8')
      path = place
      break
    } catch {}
  }
  if (text === undefined) {
    const skip = (id: string, title: string): CheckResult => ({ id, title, status: 'skip', detail: `no edgecore config at ${places.join(' or ')}: not a KubeEdge edge node (--edgecore names another file)` })
    return [skip('edgecore.metaServer', 'edgecore metaServer enabled'), skip('edgecore.clusterDNS', `edgecore clusterDNS is ${ip}`)]
  }
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err) {
    return [{ id: 'edgecore.parse', title: 'edgecore.yaml readable', status: 'fail', detail: `${path}: ${(err as Error).message}`, fix: 'fix the YAML syntax of edgecore.yaml' }]
  }
  const out: CheckResult[] = []
  const meta = get(doc, ['modules', 'metaManager', 'metaServer', 'enable'])
  out.push(meta === true
    ? { id: 'edgecore.metaServer', title: 'edgecore metaServer enabled', status: 'pass', detail: `modules.metaManager.metaServer.enable: true (${String(get(doc, ['modules', 'metaManager', 'metaServer', 'server']) ?? '127.0.0.1:10550')}), read from ${path}` }
    : {
        id: 'edgecore.metaServer',
        title: 'edgecore metaServer enabled',
        status: 'fail',
        detail: `modules.metaManager.metaServer.enable is ${JSON.stringify(meta ?? null)} in ${path}: the agent cannot list Services on this node`,
        fix: `set modules.metaManager.metaServer.enable: true in ${path}, enable dynamicController in cloudcore, then systemctl restart edgecore`
      })
  // KubeEdge ≥ 1.12 moved clusterDNS under tailoredKubeletConfig (a list); older releases have edged.clusterDNS (a string).
  const tailored = get(doc, ['modules', 'edged', 'tailoredKubeletConfig', 'clusterDNS'])
  const legacy = get(doc, ['modules', 'edged', 'clusterDNS'])
  const dns = Array.isArray(tailored) ? tailored.map(String) : typeof legacy === 'string' ? legacy.split(',').map(s => s.trim()) : []
  out.push(dns.includes(ip)
    ? { id: 'edgecore.clusterDNS', title: `edgecore clusterDNS is ${ip}`, status: 'pass', detail: `clusterDNS: [${dns.join(', ')}], read from ${path}` }
    : {
        id: 'edgecore.clusterDNS',
        title: `edgecore clusterDNS is ${ip}`,
        status: 'fail',
        detail: dns.length === 0 ? `no clusterDNS in ${path}: pods get the host's resolvers and cannot resolve Services` : `clusterDNS is [${dns.join(', ')}]: pods ask another server than EdgeMesh`,
        fix: `set modules.edged.tailoredKubeletConfig.clusterDNS: ["${ip}"] (KubeEdge < 1.12: modules.edged.clusterDNS: ${ip}) in ${path}, restart edgecore, then recreate the pods`
      })
  return out
}

async function interfaceCheck (input: DoctorInput, run: NonNullable<DoctorInput['run']>): Promise<CheckResult> {
  const { bridgeDeviceName: dev, bridgeDeviceIP: ip } = input.config.commonConfig
  const title = `interface ${dev} carries ${ip}`
  const m = input.config.modules
  if (!m.edgeDNS.enable && !m.edgeProxy.enable) return { id: 'interface', title, status: 'skip', detail: 'DNS and proxy are off' }
  const r = await run(['ip', '-j', 'addr', 'show', 'dev', dev])
  if (r.code !== 0) return { id: 'interface', title, status: 'fail', detail: `no interface ${dev}: ${r.stderr.trim()}`, fix: 'start the agent (it creates the interface), or check its log for "bridge device" errors; it needs CAP_NET_ADMIN' }
  const has = (JSON.parse(r.stdout) as Array<{ addr_info?: Array<{ local?: string }> }>).some(l => (l.addr_info ?? []).some(a => a.local === ip))
  return has
    ? { id: 'interface', title, status: 'pass', detail: `${dev} has ${ip}/32` }
    : { id: 'interface', title, status: 'fail', detail: `${dev} exists without ${ip}`, fix: `restart the agent, or: ip addr add ${ip}/32 dev ${dev}` }
}

async function dnsCheck (input: DoctorInput): Promise<CheckResult> {
  const ip = input.config.commonConfig.bridgeDeviceIP
  const port = input.config.modules.edgeDNS.listenPort
  const zone = input.config.modules.edgeDNS.clusterDomain
  const name = `kubernetes.default.svc.${zone}`
  const title = `DNS answers on ${ip}:${port}`
  if (!input.config.modules.edgeDNS.enable) return { id: 'dns', title, status: 'skip', detail: 'edgeDNS is off (cloud node: pods use the cluster DNS)' }
  const socket = createSocket('udp4')
  try {
    const rcode = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer within 2 s')), 2000)
      socket.once('error', err => { clearTimeout(timer); reject(err) })
      socket.on('message', msg => { clearTimeout(timer); resolve((dnsPacket.decode(msg) as { rcode?: string }).rcode ?? 'NOERROR') })
      socket.send(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), port, ip)
    })
    return { id: 'dns', title, status: 'pass', detail: `${name}: ${rcode}` }
  } catch (err) {
    return { id: 'dns', title, status: 'fail', detail: `${name}: ${(err as Error).message}`, fix: 'check that the agent runs with edgeDNS enabled and its log says "DNS listening"; see the interface check' }
  } finally {
    socket.close()
  }
}

async function apiCheck (input: DoctorInput): Promise<CheckResult> {
  const k = input.config.kubeAPIConfig
  const title = 'Kubernetes API reachable'
  if (k.standaloneFile !== '') return { id: 'api', title, status: 'skip', detail: `standalone services file ${k.standaloneFile}` }
  const env = input.env ?? process.env
  let client: KubeClient | undefined
  let where = ''
  try {
    const settings = k.master === '' && k.kubeConfig === '' && (env.KUBECONFIG ?? '') !== '' ? { ...k, kubeConfig: env.KUBECONFIG as string } : k
    const connection = resolveKubeConnection(settings, { env })
    where = connection.description
    client = new KubeClient(connection)
    // One page of one item: proves reachability and the right to list Services, whatever the cluster size.
    const pages = client.listPages(RESOURCES.services, { limit: 1, timeoutMs: 3000 })
    await pages.next()
    await pages.return(undefined)
    return { id: 'api', title, status: 'pass', detail: `${where} lists Services` }
  } catch (err) {
    const fix = where.includes('metaServer') || where === ''
      ? 'enable metaServer in edgecore (modules.metaManager.metaServer.enable) and dynamicController in cloudcore, then restart both'
      : 'check the API server address, the ServiceAccount token and the ClusterRole (the Helm chart creates them)'
    return { id: 'api', title, status: 'fail', detail: `${where === '' ? 'API' : where}: ${(err as Error).message}`, fix }
  } finally {
    client?.close()
  }
}

async function tcpOpen (host: string, port: number, ms: number): Promise<string | undefined> {
  try {
    (await connectWithin({ host, port }, ms)).destroy()
    return undefined
  } catch (err) {
    return err instanceof ConnectTimeoutError ? `no answer within ${ms} ms (filtered?)` : (err as NodeJS.ErrnoException).code ?? (err as Error).message
  }
}

async function relayChecks (input: DoctorInput): Promise<CheckResult[]> {
  const t = input.config.modules.edgeTunnel
  if (!t.enable) return [{ id: 'relays', title: 'relays reachable', status: 'skip', detail: 'edgeTunnel is off' }]
  const relays = relayEndpoints(t.relayNodes, t.listenPort).filter(r => r.nodeName !== input.nodeName)
  if (relays.length === 0) {
    return [{ id: 'relays', title: 'relays reachable', status: t.relayNodes.length === 0 ? 'warn' : 'pass', detail: t.relayNodes.length === 0 ? 'no relayNodes: nodes behind NAT cannot reach each other' : 'this node is the only relay', ...(t.relayNodes.length === 0 ? { fix: 'set modules.edgeTunnel.relayNodes (cloud nodes with a public address)' } : {}) }]
  }
  const out: CheckResult[] = []
  const reachable: typeof relays = []
  for (const r of relays) {
    const results = await Promise.all(r.addresses.map(async a => [`${a.host}:${a.port}`, await tcpOpen(a.host, a.port, 3000)] as const))
    const ok = results.filter(([, err]) => err === undefined)
    const ports = [...new Set(r.addresses.map(a => a.port))].join(', ') || String(t.listenPort)
    if (ok.length > 0) reachable.push(r)
    out.push(ok.length > 0
      ? { id: `relay.${r.nodeName}`, title: `relay ${r.nodeName} reachable on TCP ${ports}`, status: 'pass', detail: ok.map(([a]) => a).join(', ') }
      : {
          id: `relay.${r.nodeName}`,
          title: `relay ${r.nodeName} reachable on TCP ${ports}`,
          status: 'fail',
          detail: results.map(([a, err]) => `${a} ${err ?? ''}`).join('; ') || 'no advertiseAddress',
          fix: `open TCP ${ports} to ${r.nodeName} (firewall, security group), and check that advertiseAddress is the address this node can reach`
        })
  }
  // A data path on a port of its own (dataPath.port) splices through the relays there: a firewall that opens
  // only the tunnel port leaves every proxied connection on the slower libp2p fallback. By default it shares
  // the tunnel port, checked above.
  if (t.dataPath.enable && t.dataPath.port !== 0 && t.psk.enable && t.identity === 'compat') {
    const port = t.dataPath.port
    for (const r of reachable) {
      const hosts = [...new Set(r.addresses.map(a => a.host))]
      const results = await Promise.all(hosts.map(async h => [`${h}:${port}`, await tcpOpen(h, port, 3000)] as const))
      const ok = results.filter(([, err]) => err === undefined)
      out.push(ok.length > 0
        ? { id: `relay.${r.nodeName}.datapath`, title: `relay ${r.nodeName} data path reachable on TCP ${port}`, status: 'pass', detail: ok.map(([a]) => a).join(', ') }
        : {
            id: `relay.${r.nodeName}.datapath`,
            title: `relay ${r.nodeName} data path reachable on TCP ${port}`,
            status: 'warn',
            detail: `${results.map(([a, err]) => `${a} ${err ?? ''}`).join('; ')}: proxied connections through this relay fall back to libp2p, each opening about 2 s slower`,
            fix: `open TCP ${port} to ${r.nodeName} as well as ${[...new Set(r.addresses.map(a => a.port))].join(', ')} (firewall, security group)`
          })
    }
  }
  if (!t.psk.enable) {
    out.push({ id: 'psk', title: 'PSK agrees with the relays', status: 'warn', detail: 'psk.enable is false: the tunnel is not a private network' })
    return out
  }
  if (reachable.length === 0) {
    out.push({ id: 'psk', title: 'PSK agrees with the relays', status: 'skip', detail: 'no relay reachable' })
    return out
  }
  // A full handshake (pnet + Noise) with each reachable relay, with a throw-away identity and no reservation.
  const tunnel = new EdgeTunnel({ logger: noopLogger, metrics: new Registry() }, {
    nodeName: `edgemesh-doctor-${process.pid}`,
    listenPort: 0,
    listenAddresses: ['127.0.0.1'],
    relayNodes: reachable,
    pskFile: t.psk.path,
    reserve: false
  })
  try {
    await tunnel.start()
  } catch (err) {
    out.push({ id: 'psk', title: 'PSK agrees with the relays', status: 'fail', detail: (err as Error).message, fix: 'mount the cluster PSK at psk.path (Helm: agent.psk; see edgemesh-psk.txt)' })
    return out
  }
  try {
    const probes = await tunnel.probeRelays(5000)
    const bad = probes.filter(p => !p.ok)
    out.push(bad.length === 0
      ? { id: 'psk', title: 'PSK agrees with the relays', status: 'pass', detail: `handshake ok with ${probes.map(p => p.nodeName).join(', ')}` }
      : {
          id: 'psk',
          title: 'PSK agrees with the relays',
          status: 'fail',
          detail: bad.map(p => `${p.nodeName}: ${p.reason === 'psk' ? 'PSK mismatch or not an EdgeMesh peer (TCP connects, the handshake does not)' : 'unreachable'} (${p.error ?? ''})`).join('; '),
          fix: `every node needs the same PSK: compare \`edgemesh psk derive ${t.psk.path}\` here and on the relays (Helm: agent.psk, edgemesh-psk.txt)`
        })
  } finally {
    await tunnel.stop()
  }
  return out
}

async function rulesChecks (input: DoctorInput, run: NonNullable<DoctorInput['run']>): Promise<CheckResult[]> {
  const p = input.config.modules.edgeProxy
  if (!p.enable || p.interception === 'none') return [{ id: 'rules', title: 'interception rules installed', status: 'skip', detail: p.enable ? 'interception: none' : 'edgeProxy is off' }]
  // The iptables fallback (explicit, or where nftables is missing): our nat chain.
  const saved = await run(['iptables-save', '-t', 'nat'])
  const chain = parseIptables(saved.stdout).size
  if (p.interception === 'iptables' || (chain > 0 && (await run(['nft', 'list', 'table', 'ip', TABLE])).code !== 0)) {
    return [chain > 0 || saved.stdout.includes(`:${IPTABLES_CHAIN} `)
      ? { id: 'rules', title: 'interception rules installed', status: 'pass', detail: `iptables chain nat/${IPTABLES_CHAIN}: ${chain} service ports (userspace)` }
      : { id: 'rules', title: 'interception rules installed', status: 'fail', detail: saved.stderr.trim() || `no iptables chain nat/${IPTABLES_CHAIN}`, fix: 'start the agent with CAP_NET_ADMIN; check its log for EM_ERR_PROXY_INTERCEPTION' }]
  }
  const out: CheckResult[] = []
  const r = await run(['nft', 'list', 'map', 'ip', 'edgemesh', 'kernel'])
  const u = await run(['nft', 'list', 'map', 'ip', 'edgemesh', 'userspace'])
  if (r.code !== 0 || u.code !== 0) {
    out.push({ id: 'rules', title: 'interception rules installed', status: 'fail', detail: (r.stderr || u.stderr).trim() || 'no table ip edgemesh', fix: 'start the agent with CAP_NET_ADMIN (it installs table ip edgemesh); check its log for EM_ERR_PROXY_INTERCEPTION' })
  } else {
    // Only inside `elements = { … }`: the map's `type … : …` line has a colon too.
    const count = (s: string): number => (/elements = \{([^}]*)\}/.exec(s)?.[1]?.match(/ : /g) ?? []).length
    out.push({ id: 'rules', title: 'interception rules installed', status: 'pass', detail: `table ip edgemesh: ${count(r.stdout)} kernel-path and ${count(u.stdout)} userspace service ports` })
  }
  const tables = await run(['nft', 'list', 'tables'])
  const kubeProxy = /table ip kube-proxy\b/.test(tables.stdout) || (await run(['nft', 'list', 'chain', 'ip', 'nat', 'KUBE-SERVICES'])).code === 0
  out.push({
    id: 'kube-proxy',
    title: 'kube-proxy coexistence',
    status: kubeProxy ? 'warn' : 'pass',
    detail: kubeProxy
      ? 'kube-proxy rules found: EdgeMesh (priority -110) answers first for the services it proxies; kube-proxy keeps the rest'
      : 'no kube-proxy rules on this node',
    ...(kubeProxy ? { fix: `label Services that kube-proxy should keep with service.edgemesh.kubeedge.io/service-proxy-name (serviceFilterMode ${p.serviceFilterMode})` } : {})
  })
  return out
}

/** What NAT this node is behind, asked of the relays' reflectors (UDP listenPort) as the agent does. */
async function natCheck (input: DoctorInput): Promise<CheckResult> {
  const t = input.config.modules.edgeTunnel
  const title = 'NAT'
  if (!t.enable) return { id: 'nat', title, status: 'skip', detail: 'edgeTunnel is off' }
  const relays = relayEndpoints(t.relayNodes, t.listenPort).filter(r => r.nodeName !== input.nodeName)
  if (relays.length === 0) return { id: 'nat', title, status: 'skip', detail: 'no other relay to ask' }
  const r = await new NatDiscovery({ logger: noopLogger, metrics: new NatMetrics(new Registry()) }, { relays }).check()
  const detail = `${r.kind}: ${r.summary}${r.mapped.length > 0 ? ` (seen as ${r.mapped.map(m => `${m.address} by ${m.relay}`).join(', ')})` : ''}`
  if (r.kind === 'udp-blocked') return { id: 'nat', title, status: 'warn', detail: `${detail}; direct paths to peers are punched over TCP (simultaneous open), one TCP connection per peer`, fix: `open UDP ${t.listenPort} to the relays as well as TCP (the reflector that tells nodes their NAT listens there), and outbound UDP for punched paths` }
  if (r.kind === 'symmetric') return { id: 'nat', title, status: 'warn', detail: `${detail}; traffic to peers behind symmetric NATs stays on the relays unless the router maps this node a port`, fix: 'enable NAT-PMP, PCP or UPnP on the router (the agent asks for a mapping: dataPath.holePunch.portMapping), or use a router that keeps one mapping per local port (most home routers; Linux masquerade without random)' }
  return { id: 'nat', title, status: 'pass', detail }
}

/** The edge CNI on this node: its pod block, edge_tun0 up, the other nodes' blocks routed to it, forwarding on. */
async function cniChecks (input: DoctorInput, run: NonNullable<DoctorInput['run']>): Promise<CheckResult[]> {
  const c = input.config.modules.edgeCNI
  if (!c.enable) return [{ id: 'cni', title: 'edge CNI', status: 'skip', detail: 'edgeCNI is off' }]
  const out: CheckResult[] = []
  const file = join(input.config.commonConfig.stateDir, 'cni-block.json')
  const block = await readFile(file, 'utf8').then(t => (JSON.parse(t) as { node?: unknown, block?: unknown }), () => undefined)
  out.push(block !== undefined && block.node === input.nodeName && typeof block.block === 'string'
    ? { id: 'cni.block', title: 'pod block claimed', status: 'pass', detail: `${block.block} (${file})` }
    : { id: 'cni.block', title: 'pod block claimed', status: 'fail', detail: `no block for ${input.nodeName} in ${file}`, fix: 'check the agent\'s log for "pod block": it claims one through the API (a Lease in its namespace) from meshCIDRConfig' })
  const link = await run(['ip', '-j', 'link', 'show', TUN_NAME])
  const flags = link.code === 0 ? (JSON.parse(link.stdout) as Array<{ flags?: string[] }>)[0]?.flags ?? [] : undefined
  if (flags === undefined || !flags.includes('UP')) {
    out.push({ id: 'cni.device', title: `${TUN_NAME} up`, status: 'fail', detail: flags === undefined ? `no interface ${TUN_NAME}` : `${TUN_NAME} is down`, fix: 'the agent runs it with edgeTunnel on (psk and dataPath enabled) and CAP_NET_ADMIN; check its log for "edge CNI"' })
    return out
  }
  out.push({ id: 'cni.device', title: `${TUN_NAME} up`, status: 'pass', detail: `${TUN_NAME} is up` })
  const routes = await run(['ip', '-j', 'route', 'show', 'dev', TUN_NAME])
  const count = routes.code === 0 ? (JSON.parse(routes.stdout) as unknown[]).length : 0
  out.push(count > 0
    ? { id: 'cni.routes', title: `other nodes' pod blocks routed to ${TUN_NAME}`, status: 'pass', detail: `${count} block${count === 1 ? '' : 's'}` }
    : { id: 'cni.routes', title: `other nodes' pod blocks routed to ${TUN_NAME}`, status: 'warn', detail: 'none: no other node holds a block yet, or the agent cannot watch the Leases', fix: 'check `edgemesh status` (cni) on another node, and the agent\'s RBAC for leases (list, watch) in its namespace' })
  const forward = await run(['sysctl', '-n', 'net.ipv4.ip_forward'])
  out.push(forward.stdout.trim() === '1'
    ? { id: 'cni.forwarding', title: 'IPv4 forwarding on', status: 'pass', detail: 'net.ipv4.ip_forward = 1' }
    : { id: 'cni.forwarding', title: 'IPv4 forwarding on', status: 'fail', detail: `net.ipv4.ip_forward = ${forward.stdout.trim() || '?'}: pods' packets do not reach edge_tun0`, fix: 'sysctl -w net.ipv4.ip_forward=1 (the agent sets it when it starts)' })
  return out
}

export async function runDoctor (input: DoctorInput): Promise<CheckResult[]> {
  const run = input.run ?? execRun
  return [
    ...await edgecoreChecks(input),
    await interfaceCheck(input, run),
    await dnsCheck(input),
    await apiCheck(input),
    ...await relayChecks(input),
    await natCheck(input),
    ...await rulesChecks(input, run),
    ...await cniChecks(input, run)
  ]
}

const MARK: Record<CheckStatus, string> = { pass: '✔', fail: '✖', warn: '!', skip: '-' }

export function renderChecks (results: readonly CheckResult[]): string {
  const lines = results.map(r => `${MARK[r.status]} ${r.title}: ${r.detail}${r.status === 'fail' || r.status === 'warn' ? (r.fix !== undefined ? `\n    fix: ${r.fix}` : '') : ''}`)
  const count = (status: CheckStatus): number => results.filter(r => r.status === status).length
  const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`
  const [failed, warned] = [count('fail'), count('warn')]
  lines.push('', failed > 0
    ? `${plural(failed, 'check')} failed${warned > 0 ? `, ${plural(warned, 'warning')}` : ''}`
    : warned > 0 ? `no check failed, ${plural(warned, 'warning')}` : 'all checks passed')
  return lines.join('\n') + '\n'
}
