// BridgeDevice against a HostNet twin: creates once, reuses, never deletes on stop.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { BridgeDevice } from '../../../src/net/bridge-device.ts'
import { IpHostNet } from '../../../src/net/host-net.ts'
import type { HostNet, LinkState } from '../../../src/net/host-net.ts'
import { HostCommandError } from '../../../src/net/errors.ts'
import { noopLogger } from '../../../src/observability/logger.ts'
import { LifecycleGroup } from '../../../src/lifecycle/group.ts'

class FakeHost implements HostNet {
  links = new Map<string, LinkState>()
  calls: string[] = []
  async link (name: string): Promise<LinkState | undefined> { const l = this.links.get(name); return l === undefined ? undefined : { ...l, addresses: [...l.addresses] } }
  async addBridge (name: string): Promise<void> { this.calls.push(`add ${name}`); this.links.set(name, { kind: 'bridge', up: false, addresses: [] }) }
  async addAddress (name: string, cidr: string): Promise<void> { this.calls.push(`addr ${cidr}`); this.links.get(name)?.addresses.push(cidr) }
  async setUp (name: string): Promise<void> { this.calls.push(`up ${name}`); (this.links.get(name) as LinkState).up = true }
  async deleteLink (name: string): Promise<void> { this.calls.push(`del ${name}`); this.links.delete(name) }
}

describe('BridgeDevice', () => {
  test('creates the bridge with the /32 and brings it up; a restart reuses it; stop leaves it; remove deletes it', async () => {
    const host = new FakeHost()
    const dev = new BridgeDevice({ logger: noopLogger, host }, { name: 'edgemesh0', address: '169.254.96.16' })
    assert.deepEqual(host.calls, [], 'constructor has no side effects')
    await dev.start()
    assert.deepEqual(host.calls, ['add edgemesh0', 'addr 169.254.96.16/32', 'up edgemesh0'])
    assert.equal(dev.isReady(), true)
    await dev.stop()
    await dev.stop()
    assert.ok(host.links.has('edgemesh0'), 'stop never deletes the link')
    host.calls = []
    await new BridgeDevice({ logger: noopLogger, host }, { name: 'edgemesh0', address: '169.254.96.16' }).start()
    assert.deepEqual(host.calls, [], 'everything reused')
    await dev.remove()
    assert.equal(host.links.has('edgemesh0'), false)
  })

  test('a failed start deletes the link that run created, and only that one', async () => {
    const failing = { name: 'dns', start: async () => { throw new Error('EADDRINUSE') }, stop: async () => {} }
    const host = new FakeHost()
    const group = new LifecycleGroup('agent', [new BridgeDevice({ logger: noopLogger, host }), failing], noopLogger)
    await assert.rejects(group.start())
    assert.equal(host.links.has('edgemesh0'), false, 'no edgemesh0 left behind by an agent that never served')
    // A link from an earlier run stays: pods resolve through it between runs.
    host.links.set('edgemesh0', { kind: 'bridge', up: true, addresses: ['169.254.96.16/32'] })
    await assert.rejects(new LifecycleGroup('agent', [new BridgeDevice({ logger: noopLogger, host }), failing], noopLogger).start())
    assert.equal(host.links.has('edgemesh0'), true)
  })

  test('an existing link without the address (or down) is completed, whatever its type', async () => {
    const host = new FakeHost()
    host.links.set('edgemesh0', { kind: 'dummy', up: false, addresses: ['10.0.0.1/24'] })
    await new BridgeDevice({ logger: noopLogger, host }).start()
    assert.deepEqual(host.calls, ['addr 169.254.96.16/32', 'up edgemesh0'])
  })

  test('IpHostNet runs ip and names the failing command', async () => {
    const argvs: string[][] = []
    const host = new IpHostNet(async (argv) => {
      argvs.push([...argv])
      if (argv.includes('show')) throw new HostCommandError(argv, 'exit code 1', 'Device "edgemesh0" does not exist.')
      if (argv.includes('addr')) throw new HostCommandError(argv, 'exit code 2', 'RTNETLINK answers: File exists')
      if (argv.includes('up')) throw new HostCommandError(argv, 'exit code 2', 'RTNETLINK answers: Operation not permitted')
      return ''
    })
    assert.equal(await host.link('edgemesh0'), undefined)
    await host.addBridge('edgemesh0')
    await host.addAddress('edgemesh0', '169.254.96.16/32')
    await assert.rejects(host.setUp('edgemesh0'), (err: HostCommandError) => {
      assert.equal(err.code, 'EM_ERR_NET_HOST_COMMAND')
      assert.match(err.message, /`ip link set edgemesh0 up` failed: exit code 2 \(RTNETLINK answers: Operation not permitted\)/)
      return true
    })
    assert.deepEqual(argvs[1], ['ip', 'link', 'add', 'edgemesh0', 'type', 'bridge'])
  })
})
