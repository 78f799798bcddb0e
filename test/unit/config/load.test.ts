import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { parseConfig } from '../../../src/config/load.ts'
import { ConfigFileError, ConfigInvalidError } from '../../../src/config/errors.ts'

const fixture = (name: string): string => readFileSync(new URL(`../../fixtures/config/${name}`, import.meta.url), 'utf8')
const edge = {}
const cloud = { KUBERNETES_PORT: 'tcp://10.96.0.1:443' }

function issuesOf (fn: () => unknown): ConfigInvalidError['issues'] {
  try { fn() } catch (err) {
    assert.ok(err instanceof ConfigInvalidError, `expected ConfigInvalidError, got ${String(err)}`)
    assert.equal(err.code, 'EM_ERR_CONFIG_INVALID')
    return err.issues
  }
  assert.fail('expected the config to be rejected')
}

test('empty file gives upstream code defaults', () => {
  const { config, warnings } = parseConfig('agent', '', { env: cloud })
  assert.deepEqual(warnings, [])
  const t = config.modules.edgeTunnel
  assert.equal(t.maxCandidates, 15)
  assert.equal(t.listenPort, 20006)
  assert.equal(t.transport, 'tcp')
  assert.equal(t.rendezvous, 'EDGEMESH_PLAYGOUND')
  assert.equal(t.psk.path, '/etc/edgemesh/psk')
  assert.equal(t.tunnelLimitConfig.enable, true)
  assert.equal(config.commonConfig.bridgeDeviceIP, '169.254.96.16')
  assert.equal(config.commonConfig.bridgeDeviceName, 'edgemesh0')
  assert.equal(config.kubeAPIConfig.qps, 100)
  assert.equal(config.kubeAPIConfig.burst, 200)
  assert.equal(config.kubeAPIConfig.metaServer.server, 'http://127.0.0.1:10550')
  assert.equal(config.modules.edgeDNS.cacheDNS.cacheTTL, 30)
  assert.equal(config.modules.edgeProxy.socks5Proxy.listenPort, 10800)
  assert.equal(config.modules.edgeProxy.serviceFilterMode, 'FilterIfLabelExists')
})

test('EdgeMode turns EdgeDNS on and asks for JSON; CloudMode does not', () => {
  const e = parseConfig('agent', '', { env: edge }).config
  assert.equal(e.modules.edgeDNS.enable, true)
  assert.equal(e.kubeAPIConfig.contentType, 'application/json')
  const c = parseConfig('agent', '', { env: cloud }).config
  assert.equal(c.modules.edgeDNS.enable, false)
  assert.equal(c.kubeAPIConfig.contentType, 'application/vnd.kubernetes.protobuf')
  const explicit = parseConfig('agent', 'modules: {edgeDNS: {enable: false}}', { env: edge }).config
  assert.equal(explicit.modules.edgeDNS.enable, false, 'an explicit value wins over the mode default')
})

test('upstream files load unchanged', () => {
  for (const name of ['upstream-agent-configmap.yaml', 'upstream-helm-default.yaml', 'upstream-full.yaml']) {
    const { config, warnings } = parseConfig('agent', fixture(name), { env: edge, file: `/etc/edgemesh/config/${name}` })
    assert.deepEqual(warnings, [], name)
    assert.equal(config.modules.edgeProxy.enable, true, name)
    assert.equal(config.modules.edgeTunnel.enable, true, name)
    assert.equal(config.modules.edgeTunnel.configPath, `/etc/edgemesh/config/${name}`, 'configPath defaults to the file')
  }
})

test('keys match case-insensitively; lists replace; objects merge', () => {
  const { config } = parseConfig('agent', fixture('upstream-full.yaml'), { env: edge })
  const t = config.modules.edgeTunnel
  assert.equal(t.tunnelLimitConfig.tunnelPeerBaseStreamIn, 1024)
  assert.equal(t.tunnelLimitConfig.enable, false)
  assert.equal(t.maxCandidates, 5)
  assert.deepEqual(t.relayNodes.map(r => r.nodeName), ['k8s-master', 'k8s-node1'])
  assert.deepEqual(config.modules.edgeDNS.cacheDNS.upstreamServers, ['10.96.0.10', '1.1.1.1:53'])
  assert.equal(config.modules.edgeProxy.loadBalancer.consistentHash.load, 1.25)
  const merged = parseConfig('agent', 'MODULES:\n  EDGETUNNEL:\n    PSK:\n      PATH: /x/psk\n', { env: edge }).config
  assert.equal(merged.modules.edgeTunnel.psk.path, '/x/psk')
  assert.equal(merged.modules.edgeTunnel.psk.enable, true, 'siblings keep their defaults')
})

test('unknown keys are warnings naming the key', () => {
  const { warnings } = parseConfig('agent', 'modules:\n  edgeTunel:\n    enable: true\n  edgeProxy:\n    enabled: true\n', { env: edge })
  assert.deepEqual(warnings, ['unknown key "modules.edgeTunel" ignored', 'unknown key "modules.edgeProxy.enabled" ignored'])
})

test('invalid transport names the path and the allowed values', () => {
  const issues = issuesOf(() => parseConfig('agent', 'modules:\n  edgeTunnel:\n    transport: udp\n', { env: edge }))
  assert.deepEqual(issues, [{ path: 'modules.edgeTunnel.transport', expected: 'one of "tcp", "ws"', given: '"udp"' }])
})

test('every invalid value is reported with path, expectation and given value', () => {
  const issues = issuesOf(() => parseConfig('agent', [
    'kubeAPIConfig: {qps: fast}',
    'commonConfig: {bridgeDeviceIP: 169.254.96}',
    'modules:',
    '  edgeDNS: {listenPort: 70000}',
    '  edgeProxy: {serviceFilterMode: Sometimes}',
    '  edgeTunnel: {relayNodes: [{nodeName: a, advertiseAddress: ["not an ip!"]}]}'
  ].join('\n'), { env: edge }))
  assert.deepEqual(issues.map(i => i.path).sort(), [
    'commonConfig.bridgeDeviceIP', 'kubeAPIConfig.qps', 'modules.edgeDNS.listenPort',
    'modules.edgeProxy.serviceFilterMode', 'modules.edgeTunnel.relayNodes[0].advertiseAddress[0]'
  ])
  const ipIssues = issuesOf(() => parseConfig('agent', 'commonConfig: {bridgeDeviceIP: 169.254.96}\nmodules: {edgeTunnel: {relayNodes: [{nodeName: a, advertiseAddress: ["not an ip!"]}]}}', { env: edge }))
  assert.deepEqual(ipIssues, [
    { path: 'commonConfig.bridgeDeviceIP', expected: 'an IPv4 address', given: '"169.254.96"' },
    { path: 'modules.edgeTunnel.relayNodes[0].advertiseAddress[0]', expected: 'an IP address or host name, optionally with :port', given: '"not an ip!"' }
  ])
})

test('kubeConfig must be absolute and exist', () => {
  assert.deepEqual(issuesOf(() => parseConfig('agent', 'kubeAPIConfig: {kubeConfig: kubeconfig}', { env: edge })),
    [{ path: 'kubeAPIConfig.kubeConfig', expected: 'an absolute path', given: '"kubeconfig"' }])
  assert.deepEqual(issuesOf(() => parseConfig('agent', 'kubeAPIConfig: {kubeConfig: /nonexistent/kubeconfig}', { env: edge })),
    [{ path: 'kubeAPIConfig.kubeConfig', expected: 'an existing kubeconfig file', given: '"/nonexistent/kubeconfig" (not found)' }])
})

test('a mapping where a scalar is expected and vice versa', () => {
  assert.deepEqual(issuesOf(() => parseConfig('agent', 'modules: [1, 2]', { env: edge })),
    [{ path: 'modules', expected: 'a mapping', given: '[1,2]' }])
})

test('YAML syntax errors name the file and line', () => {
  assert.throws(() => parseConfig('agent', 'modules:\n  edgeTunnel: {enable: true\n', { file: '/c.yaml', env: edge }),
    (err: unknown) => err instanceof ConfigFileError && /\/c\.yaml:\d+:\d+ is not valid YAML/.test(err.message))
})

test('the result is frozen', () => {
  const { config } = parseConfig('agent', '', { env: edge })
  assert.throws(() => { (config.modules.edgeTunnel as { listenPort: number }).listenPort = 1 }, TypeError)
})

test('gateway config shares the tunnel schema and has its own module', () => {
  const { config } = parseConfig('gateway', 'modules: {edgeGateway: {enable: true, nic: "eth0"}, edgeTunnel: {enable: true}}', { env: edge })
  assert.equal(config.kind, 'EdgeMeshGateway')
  assert.equal(config.modules.edgeGateway.nic, 'eth0')
  assert.equal(config.modules.edgeGateway.excludeIP, '*')
  assert.equal(config.modules.edgeTunnel.listenPort, 20006)
  assert.deepEqual(issuesOf(() => parseConfig('gateway', 'modules: {edgeGateway: {includeIP: "10.0.0.0/33"}}', { env: edge })),
    [{ path: 'modules.edgeGateway.includeIP', expected: 'comma-separated IPs/CIDRs or `*`', given: '"10.0.0.0/33"' }])
})
