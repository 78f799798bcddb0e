/**
 * Hostile or broken config files are refused quickly, as config errors
 * (exit code 2 in the CLI) naming the key, never as a crash or a long stall.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseConfig } from '../../../src/config/load.ts'
import { ConfigFileError, ConfigInvalidError } from '../../../src/config/errors.ts'

const edge = {}
const file = '/etc/edgemesh/config/edgemesh-agent.yaml'

/** The error parseConfig throws, and how long it took. */
function refusal (text: string): { err: Error, ms: number } {
  const t0 = performance.now()
  try {
    parseConfig('agent', text, { env: edge, file })
  } catch (err) {
    const ms = performance.now() - t0
    assert.ok(err instanceof ConfigFileError || err instanceof ConfigInvalidError, `a config error, got ${String(err)}`)
    assert.ok(err.message.includes(file), err.message)
    return { err, ms }
  }
  assert.fail('expected the config to be refused')
}

function billionLaughs (): string {
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x]']
  const names = 'abcdefghi'
  for (let i = 1; i < names.length; i++) {
    const p = names[i - 1] as string
    lines.push(`${names[i] as string}: &${names[i] as string} [${Array(9).fill('*' + p).join(', ')}]`)
  }
  lines.push('modules: {edgeTunnel: {relayNodes: *i}}')
  return lines.join('\n') + '\n'
}

function relayNodes (n: number): string {
  let s = 'modules:\n  edgeTunnel:\n    relayNodes:\n'
  for (let i = 0; i < n; i++) s += `      - nodeName: node-${i}\n        advertiseAddress: [10.0.${(i >> 8) & 255}.${i & 255}]\n`
  return s
}

test('1: an alias bomb is refused naming the key, not thrown as a ReferenceError', () => {
  const { err } = refusal(billionLaughs())
  assert.ok(err instanceof ConfigInvalidError)
  assert.match(err.message, /\n {2}f: expected at most \d+ values with aliases expanded/)
  const many = refusal('x: &x 1\ny: [' + Array(500).fill('*x').join(', ') + ']\n').err
  assert.match(many.message, /y\[0\]: expected at most 100 aliases/)
  // Ordinary anchors still work.
  const { config } = parseConfig('agent', 'x: &addr [10.0.0.1]\nmodules: {edgeTunnel: {relayNodes: [{nodeName: a, advertiseAddress: *addr}, {nodeName: b, advertiseAddress: *addr}]}}\n', { env: edge })
  assert.deepEqual(config.modules.edgeTunnel.relayNodes.map(r => r.advertiseAddress), [['10.0.0.1'], ['10.0.0.1']])
})

test('2: 100,000 relayNodes are refused in under a second, naming the key', () => {
  const big = refusal(relayNodes(100_000))
  assert.ok(big.ms < 1000, `${big.ms} ms`)
  assert.match(big.err.message, /is larger than 1 MiB \(the limit is reached in modules\.edgeTunnel\.relayNodes\)/)
  // Within 1 MiB: 100,000 tiny entries trip the token limit.
  const compact = refusal('modules: {edgeTunnel: {relayNodes: [' + Array(100_000).fill('{}').join(',') + ']}}\n')
  assert.ok(compact.ms < 1000, `${compact.ms} ms`)
  assert.match(compact.err.message, /has more than 50000 YAML tokens \(the limit is reached in modules\.edgeTunnel\.relayNodes\)/)
  // Under the token limit the schema's maxItems names the count.
  const over = refusal(relayNodes(1001)).err
  assert.ok(over instanceof ConfigInvalidError)
  assert.deepEqual(over.issues, [{ path: 'modules.edgeTunnel.relayNodes', expected: 'a list of at most 1000 items', given: '1001 items' }])
  assert.equal(parseConfig('agent', relayNodes(1000), { env: edge }).config.modules.edgeTunnel.relayNodes.length, 1000)
})

test('3: a 10 MB string is refused in under a second, naming the key; a long one by maxLength', () => {
  const big = refusal(`modules:\n  edgeTunnel:\n    rendezvous: "${'a'.repeat(10_000_000)}"\n`)
  assert.ok(big.ms < 1000, `${big.ms} ms`)
  assert.match(big.err.message, /is larger than 1 MiB \(the limit is reached in modules\.edgeTunnel\.rendezvous\)/)
  const long = refusal(`modules:\n  edgeTunnel:\n    rendezvous: ${'a'.repeat(500_000)}\n`)
  assert.ok(long.ms < 1000, `${long.ms} ms`)
  assert.ok(long.err instanceof ConfigInvalidError)
  assert.equal(long.err.issues[0]?.path, 'modules.edgeTunnel.rendezvous')
  assert.equal(long.err.issues[0]?.expected, 'a string of at most 4096 characters')
  assert.ok(long.err.message.length < 500, 'the message shows only the start of the value')
})

test('4: duplicate keys are refused naming the key and the line, also when only the case differs', () => {
  for (const second of ['enable', 'Enable']) {
    const { err } = refusal(`modules:\n  edgeTunnel:\n    enable: true\n    ${second}: false\n`)
    assert.ok(err instanceof ConfigInvalidError)
    assert.deepEqual(err.issues, [{ path: `modules.edgeTunnel.${second}`, expected: 'each key once (keys match case-insensitively)', given: 'the key again at line 4' }])
  }
})

test('5: bridgeDeviceIP 0.0.0.0 is refused; loopback only without interception', () => {
  const zero = refusal('commonConfig: {bridgeDeviceIP: 0.0.0.0}\n').err
  assert.ok(zero instanceof ConfigInvalidError)
  assert.equal(zero.issues[0]?.path, 'commonConfig.bridgeDeviceIP')
  assert.match(zero.message, /commonConfig\.bridgeDeviceIP: expected a unicast IPv4 address/)
  for (const interception of ['nftables', 'iptables']) {
    const lo = refusal(`commonConfig: {bridgeDeviceIP: 127.0.0.1}\nmodules: {edgeProxy: {enable: true, interception: ${interception}}}\n`).err
    assert.match(lo.message, new RegExp(`commonConfig\\.bridgeDeviceIP: expected a non-loopback address while modules\\.edgeProxy\\.interception is "${interception}"`))
  }
  assert.match(refusal('commonConfig: {bridgeDeviceIP: 224.0.0.1}\n').err.message, /commonConfig\.bridgeDeviceIP/)
  // What the demo and tests use: loopback with interception none, or with the proxy off.
  for (const modules of ['{edgeProxy: {enable: true, interception: none}}', '{edgeProxy: {enable: false}, edgeDNS: {enable: true}}']) {
    assert.equal(parseConfig('agent', `commonConfig: {bridgeDeviceIP: 127.0.0.1}\nmodules: ${modules}\n`, { env: edge }).config.commonConfig.bridgeDeviceIP, '127.0.0.1')
  }
})

test('6: bridgeDeviceName longer than 15 bytes, or not an interface name, is refused', () => {
  const long = refusal('commonConfig: {bridgeDeviceName: edgemesh012345678901}\n').err
  assert.ok(long instanceof ConfigInvalidError)
  assert.deepEqual(long.issues.map(i => [i.path, i.expected]), [['commonConfig.bridgeDeviceName', 'a string of at most 15 characters']])
  const bytes = refusal('commonConfig: {bridgeDeviceName: "édgemesh-brïdge"}\n').err as ConfigInvalidError
  assert.equal(bytes.issues[0]?.path, 'commonConfig.bridgeDeviceName', '15 characters but 17 bytes')
  assert.equal((refusal('commonConfig: {bridgeDeviceName: "a/b"}\n').err as ConfigInvalidError).issues[0]?.path, 'commonConfig.bridgeDeviceName')
  assert.equal(parseConfig('agent', 'commonConfig: {bridgeDeviceName: edgemesh0123456}\n', { env: edge }).config.commonConfig.bridgeDeviceName, 'edgemesh0123456')
})

test('deep bracket nesting is refused instead of overflowing the stack', () => {
  const { err } = refusal('a: ' + '['.repeat(100_000) + ']'.repeat(100_000) + '\n')
  assert.match(err.message, /nests brackets more than 64 deep \(the limit is reached in a\b/)
})

test('a long list of problems is listed in part', () => {
  const { err } = refusal('modules: {edgeTunnel: {relayNodes: [' + Array(500).fill('{nodeName: a, advertiseAddress: ["not an ip!"]}').join(',') + ']}}\n')
  assert.ok(err instanceof ConfigInvalidError)
  assert.equal(err.issues.length, 500)
  assert.match(err.message, /… and 480 more$/)
})

// Both found by test/unit/config/fuzz.test.ts: the first threw a raw TypeError, the second loaded as no relays.
test('an alias inside the value it names, and a mapping where a list belongs, are refused naming the key', () => {
  const cycle = refusal('kubeAPIConfig: &k {qps: *k}\n').err
  assert.ok(cycle instanceof ConfigInvalidError)
  assert.deepEqual(cycle.issues, [{ path: 'kubeAPIConfig.qps', expected: 'an alias (*name) outside the value it names', given: '*k' }])
  const mapping = refusal('modules:\n  edgeTunnel:\n    relayNodes:\n      nodeName: relay-1\n').err
  assert.ok(mapping instanceof ConfigInvalidError)
  assert.deepEqual(mapping.issues, [{ path: 'modules.edgeTunnel.relayNodes', expected: 'a list of at most 1000 items', given: '{"nodeName":"relay-1"}' }])
})
