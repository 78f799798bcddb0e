import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig, parseEnv, parseSubnet } from '../../../src/cni/config.ts'
import { LeaseStore } from '../../../src/cni/ipam.ts'
import { runCni } from '../../../src/cni/plugin.ts'
import { hostVethName } from '../../../src/cni/netlink.ts'

const conf = (extra: Record<string, unknown> = {}): string => JSON.stringify({ cniVersion: '1.0.0', name: 'edgemesh', type: 'edgemesh-cni', subnet: '10.244.64.0/24', ...extra })

test('configuration: defaults, and errors that name the field with the spec\'s codes', () => {
  const c = parseConfig(conf(), 'ADD')
  assert.deepEqual([c.bridge, c.gateway, c.mtu, c.dataDir, c.subnet.cidr], ['edgemesh-cni0', '10.244.64.1', 1500, '/var/lib/cni/networks', '10.244.64.0/24'])
  assert.equal(parseSubnet('10.244.64.77/24', 'subnet').cidr, '10.244.64.0/24', 'host bits are dropped')
  const refused = (text: string, code: number, msg: RegExp): void => {
    assert.throws(() => parseConfig(text, 'ADD'), (err: { cniCode: number, message: string }) => err.cniCode === code && msg.test(err.message))
  }
  refused('not json', 6, /not a JSON object/)
  refused(conf({ cniVersion: '0.2.0' }), 1, /cniVersion 0\.2\.0 is not supported/)
  refused(conf({ subnet: undefined }), 7, /^subnet is required/)
  refused(conf({ subnet: '10.244.64.0/31' }), 7, /subnet: "10\.244\.64\.0\/31" is not an IPv4 CIDR/)
  refused(conf({ gateway: '10.0.0.1' }), 7, /gateway 10\.0\.0\.1 is not in subnet 10\.244\.64\.0\/24/)
  refused(conf({ bridge: 'a-bridge-name-too-long' }), 7, /bridge "a-bridge-name-too-long" is not an interface name/)
  refused(conf({ mtu: 100 }), 7, /mtu must be an integer from 576 to 9000/)
  assert.throws(() => parseEnv({ CNI_COMMAND: 'ADD', CNI_NETNS: '/x', CNI_IFNAME: 'eth0' }), /CNI_CONTAINERID is required for ADD/)
  assert.throws(() => parseEnv({ CNI_COMMAND: 'PUT' }), /CNI_COMMAND is "PUT"/)
  assert.deepEqual(parseEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0' }).netns, '', 'DEL without a namespace is allowed')
})

test('VERSION, and errors on stdout in the spec\'s format with exit code 1', async () => {
  const v = await runCni({ CNI_COMMAND: 'VERSION' }, '')
  assert.deepEqual(JSON.parse(v.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] })
  const bad = await runCni({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/x', CNI_IFNAME: 'eth0' }, conf({ subnet: 'nope' }))
  assert.equal(bad.exitCode, 1)
  assert.deepEqual(JSON.parse(bad.stdout), { cniVersion: '1.0.0', code: 7, msg: 'subnet: "nope" is not an IPv4 CIDR with a prefix from /8 to /30' })
})

test('leases: host-local\'s files, round robin after the last one, the same address again for the same owner, none twice, full range refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'em-cni-ipam-'))
  try {
    const subnet = parseSubnet('10.0.0.0/29', 'subnet')
    const store = new LeaseStore(dir, 'net', subnet, '10.0.0.1')
    assert.equal(await store.allocate('c1', 'eth0'), '10.0.0.2')
    assert.equal(await store.allocate('c1', 'eth0'), '10.0.0.2', 'the same owner gets its address back')
    assert.equal(await readFile(join(dir, 'net', '10.0.0.2'), 'utf8'), 'c1\r\neth0')
    assert.equal(await readFile(join(dir, 'net', 'last_reserved_ip.0'), 'utf8'), '10.0.0.2')
    assert.deepEqual(await store.release('c1', 'eth0'), ['10.0.0.2'])
    assert.equal(await store.allocate('c2', 'eth0'), '10.0.0.3', 'round robin: a released address is not reused at once')
    const all = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map(async id => await store.allocate(id, 'eth0').catch((err: Error) => err.message)))
    assert.deepEqual(all.filter(x => x.startsWith('10.')).sort(), ['10.0.0.2', '10.0.0.4', '10.0.0.5', '10.0.0.6'], 'concurrent allocations never share an address')
    assert.ok(all.filter(x => !x.startsWith('10.')).every(m => /no free address in 10\.0\.0\.0\/29/.test(m)))
    // host-local's older format (`<id>` alone) still counts as that owner's.
    await writeFile(join(dir, 'net', '10.0.0.7'), 'old')
    assert.equal(await store.find('old', ''), undefined)
    assert.deepEqual((await store.owners()).find(o => o.ip === '10.0.0.7'), { ip: '10.0.0.7', containerId: 'old', ifName: '' })
    assert.ok((await readdir(join(dir, 'net'))).includes('last_reserved_ip.0'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('host veth names fit in 15 characters and differ per container and interface', () => {
  const names = new Set([hostVethName('a', 'eth0'), hostVethName('a', 'eth1'), hostVethName('b', 'eth0')])
  assert.equal(names.size, 3)
  for (const n of names) assert.ok(n.length <= 15, n)
})
