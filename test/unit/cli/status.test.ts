import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderStatus } from '../../../src/cli/status.ts'

test('edgemesh status says why the tunnel is not running', () => {
  const out = renderStatus({
    ready: false,
    notReady: ['tunnel'],
    services: { count: 1, source: 'live', synced: true },
    tunnel: { relay: false, addresses: [], peers: [], error: 'tunnel identity file /var/lib/edgemesh/tunnel-identity.key: not a libp2p private key' }
  }, 0)
  assert.match(out, /^ready: {5}no \(waiting for tunnel\)$/m)
  assert.match(out, /^tunnel: {4}\(not started\)\n {11}not running: tunnel identity file \/var\/lib\/edgemesh\/tunnel-identity\.key/m)
})

test('edgemesh status shows the gateway\'s listeners, routes, unbound addresses and rejected resources', () => {
  const out = renderStatus({
    ready: false,
    notReady: ['gateway'],
    gateway: {
      listeners: [
        { port: 80, kind: 'http', tls: 'none', gateways: ['default/gw'], addresses: ['10.0.0.5'], connections: 3, routes: [{ domain: 'shop.example.com', routes: ['default/shop#0', 'default/shop#api'] }] },
        { port: 443, kind: 'passthrough', tls: 'none', gateways: ['default/gw'], addresses: [], failed: [{ address: '10.0.0.5', error: 'EADDRINUSE' }], connections: 0 }
      ],
      rejected: { 'VirtualService default/broken': 'spec.http[0].match[0].uri.regex is not a valid regular expression' },
      problems: []
    }
  }, 0)
  assert.match(out, /^80 +http +none +10\.0\.0\.5 +3 +shop\.example\.com: default\/shop#0 default\/shop#api$/m)
  assert.match(out, /^443 +passthrough .*not bound: 10\.0\.0\.5 EADDRINUSE/m)
  assert.match(out, /^rejected: {2}VirtualService default\/broken: spec\.http\[0\]/m)
})

test('edgemesh status shows the NAT the node is behind, what each relay saw and the candidates', () => {
  const out = renderStatus({
    ready: true,
    nat: {
      kind: 'cone',
      mapping: 'endpoint-independent',
      filtering: 'port-dependent',
      portPreserved: true,
      localPort: 41000,
      mapped: [{ relay: 'k8s-master', address: '203.0.113.1:41000' }, { relay: 'k8s-node1', address: '203.0.113.1:41000' }],
      candidates: ['192.168.1.11:41000', '203.0.113.1:41000'],
      summary: 'cone NAT: one public mapping for every destination, port preserved; answers only from the exact address and port sent to (port-restricted)',
      checkedAt: '2026-12-06T10:00:00.000Z',
      portMapping: { address: '203.0.113.1:41000', protocol: 'NAT-PMP', since: 0 },
      peers: [
        { nodeName: 'edge-2', path: 'direct', over: 'udp', address: '198.51.100.7:40211', rttMs: 12, since: 0 },
        { nodeName: 'edge-3', path: 'direct', over: 'tcp', address: '198.51.100.9:51332', rttMs: 15, since: 0 },
        { nodeName: 'edge-4', path: 'relayed', reason: 'both nodes are behind symmetric NATs', since: 0 }
      ]
    }
  }, 0)
  assert.match(out, /^ {11}port mapped by the router \(NAT-PMP\): 203\.0\.113\.1:41000$/m)
  assert.match(out, /^ +edge-2: direct over UDP to 198\.51\.100\.7:40211, rtt 12ms /m)
  assert.match(out, /^ +edge-3: direct over TCP to 198\.51\.100\.9:51332, rtt 15ms /m)
  assert.match(out, /^ +edge-4: relayed: both nodes are behind symmetric NATs /m)
  assert.match(out, /^nat: {7}cone: cone NAT: one public mapping for every destination, port preserved; /m)
  assert.match(out, /^ {11}seen as 203\.0\.113\.1:41000 by k8s-master, 203\.0\.113\.1:41000 by k8s-node1; candidates 192\.168\.1\.11:41000, 203\.0\.113\.1:41000$/m)
})

test('edgemesh status shows the pod block, or why there is none', () => {
  assert.match(renderStatus({ ready: true, cni: { block: '10.200.0.0/24', side: 'edge' } }, 0), /^cni: {7}pod block 10\.200\.0\.0\/24 \(edge\)$/m)
  assert.match(renderStatus({ ready: true, cni: { side: 'cloud', error: 'meshCIDRConfig.cloudCIDR is empty' } }, 0), /^cni: {7}no pod block: meshCIDRConfig\.cloudCIDR is empty$/m)
})
