// The default gateway the port mapper asks, from /proc/net/route's text.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { NetworkInterfaceInfo } from 'node:os'
import { defaultRoute } from '../../../src/nat/port-mapping.ts'

const HEADER = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT'
const ifaces = (name: string, address: string): NodeJS.Dict<NetworkInterfaceInfo[]> => ({
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  [name]: [{ address, netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: `${address}/24` }]
})

test('the default route\'s gateway (little-endian hex) and this host\'s address on its interface', () => {
  const table = [HEADER, 'eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0', 'eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0', ''].join('\n')
  assert.deepEqual(defaultRoute(table, ifaces('eth0', '192.168.1.23')), { gateway: '192.168.1.1', localAddress: '192.168.1.23' })
})

test('no default route, a route that is down, or an interface without IPv4: no gateway', () => {
  assert.equal(defaultRoute([HEADER, 'eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0'].join('\n'), ifaces('eth0', '192.168.1.23')), undefined)
  assert.equal(defaultRoute([HEADER, 'eth0\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0'].join('\n'), ifaces('eth0', '192.168.1.23')), undefined)
  assert.equal(defaultRoute([HEADER, 'wlan0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0'].join('\n'), ifaces('eth0', '192.168.1.23')), undefined)
  assert.equal(defaultRoute('', ifaces('eth0', '192.168.1.23')), undefined)
})
