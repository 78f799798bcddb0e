import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LocalSources, parseProcRoutes } from '../../../src/net/local-sources.ts'
import type { HostView } from '../../../src/net/local-sources.ts'

// An edge node: eth0 on the LAN with the default route, docker0 for bridge pods, a calico-style /32 veth.
const PROC_ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
cali1234\t0501F40A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0
`

test('/proc/net/route is read as destination, mask and device', () => {
  assert.deepEqual(parseProcRoutes(PROC_ROUTE), [
    { device: 'eth0', destination: 0, mask: 0 },
    { device: 'eth0', destination: 0xc0a80100, mask: 0xffffff00 },
    { device: 'docker0', destination: 0xac110000, mask: 0xffff0000 },
    { device: 'cali1234', destination: 0x0af40105, mask: 0xffffffff }
  ])
})

test('local: own addresses and pods behind bridges or veths; not: LAN and WAN hosts', () => {
  const view: HostView = { addresses: () => ['192.168.1.11', '172.17.0.1', '::1'], routes: () => parseProcRoutes(PROC_ROUTE) }
  const local = new LocalSources(view)
  assert.equal(local.isLocal('192.168.1.11'), true, 'a host-network pod')
  assert.equal(local.isLocal('::ffff:192.168.1.11'), true)
  assert.equal(local.isLocal('127.0.0.1'), true)
  assert.equal(local.isLocal('172.17.0.5'), true, 'a docker0 pod')
  assert.equal(local.isLocal('10.244.1.5'), true, 'a pod on its own veth')
  assert.equal(local.isLocal('192.168.1.12'), false, 'another host on the LAN')
  assert.equal(local.isLocal('203.0.113.7'), false, 'anything through the default route')
  assert.equal(local.isLocal('10.244.1.6'), false, 'a pod address routed out via the uplink')
})

test('no default route: every source is local; the view is re-read after refreshMs', async () => {
  let routes = parseProcRoutes(PROC_ROUTE).filter(r => r.mask !== 0)
  const local = new LocalSources({ addresses: () => [], routes: () => routes }, 20)
  assert.equal(local.isLocal('192.168.1.12'), true)
  routes = parseProcRoutes(PROC_ROUTE)
  assert.equal(local.isLocal('192.168.1.12'), true, 'cached until the refresh')
  await new Promise(resolve => setTimeout(resolve, 30))
  assert.equal(local.isLocal('192.168.1.12'), false)
})
