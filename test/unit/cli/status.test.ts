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
