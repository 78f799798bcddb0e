import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { NetworkInterfaceInfo } from 'node:os'
import { listenAddresses } from '../../../src/gateway/index.ts'

const v4 = (address: string): NetworkInterfaceInfo => ({ address, family: 'IPv4', netmask: '255.255.255.0', mac: '00:00:00:00:00:00', internal: false, cidr: `${address}/24` })
const v6 = (address: string): NetworkInterfaceInfo => ({ address, family: 'IPv6', netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', internal: false, cidr: `${address}/64`, scopeid: 0 })
const nics = { lo: [v4('127.0.0.1'), v6('::1')], eth0: [v4('10.0.0.5'), v4('10.0.1.5')], eth1: [v4('192.168.1.5')], docker0: [v4('172.17.0.1')] }

test('upstream semantics of nic, includeIP and excludeIP', () => {
  const all = { nic: '*', includeIP: '*', excludeIP: '*' }
  assert.deepEqual(listenAddresses(all, nics), ['10.0.0.5', '10.0.1.5', '127.0.0.1', '172.17.0.1', '192.168.1.5'], 'IPv4 of every interface, lo included')
  assert.deepEqual(listenAddresses({ ...all, nic: '' }, nics).length, 5, 'empty nic is all')
  assert.deepEqual(listenAddresses({ ...all, nic: 'eth0, eth1' }, nics), ['10.0.0.5', '10.0.1.5', '192.168.1.5'])
  assert.deepEqual(listenAddresses({ ...all, includeIP: '10.0.0.0/16,127.0.0.1' }, nics), ['10.0.0.5', '10.0.1.5', '127.0.0.1'])
  assert.deepEqual(listenAddresses({ ...all, excludeIP: '10.0.1.0/24,172.17.0.1' }, nics), ['10.0.0.5', '127.0.0.1', '192.168.1.5'])
  assert.deepEqual(listenAddresses({ ...all, excludeIP: '' }, nics).length, 5, 'empty excludeIP drops nothing')
  assert.deepEqual(listenAddresses({ nic: 'eth0', includeIP: '10.0.0.0/8', excludeIP: '10.0.0.5' }, nics), ['10.0.1.5'])
  assert.deepEqual(listenAddresses({ ...all, nic: 'wlan9' }, nics), [])
})
