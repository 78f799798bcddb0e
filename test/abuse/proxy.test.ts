// The proxy's userspace listeners (interception none: one per service port
// on 127.0.0.1) under garbage, truncated, silent, dripping and oversized
// clients. A proxy does not judge what it carries: bytes to a reachable
// endpoint go through unchanged however odd, and silent clients are kept;
// what it must not do is lose bytes or keep anything once the clients left.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import type { Server } from 'node:net'
import { startEcho } from '../helpers/net.ts'
import { assertClosed, flood, NODE_NAME, startAgent } from './agent.ts'
import type { Agent } from './agent.ts'

// src/mesh/peer-dialer.ts: one budget for a proxied dial; src/proxy/proxy.ts: how long a policy waits for a request head.
const DIAL_MS = 10_000
const PEEK_MS = 5000
const MARGIN_MS = 2000

/** Two services on this node's echo: `echo` plain, `hashed` with a policy that reads a request header. */
function services (echoPort: number): string {
  const service = (name: string, ip: string): string => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  clusterIP: ${ip}
  ports: [{ name: tcp, port: 7000, protocol: TCP }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: tcp, port: ${echoPort}, protocol: TCP }]
endpoints: [{ addresses: [127.0.0.1], nodeName: ${NODE_NAME} }]
`
  return `${service('echo', '10.96.0.200')}---
${service('hashed', '10.96.0.201')}---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: { name: hashed, namespace: default }
spec: { host: hashed, trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: x-user } } } }
`
}

/** Sends `first`, then (with `dripMs`) a byte every 500 ms for that long, then EOF; resolves with what was sent and what came back. */
async function echoed (port: number, first: Buffer, dripMs = 0): Promise<{ sent: Buffer, back: Buffer }> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    const sent = [first]
    const back: Buffer[] = []
    socket.on('data', (d: Buffer) => back.push(d))
    socket.on('end', () => resolve({ sent: Buffer.concat(sent), back: Buffer.concat(back) }))
    socket.on('error', reject)
    socket.write(first)
    const drip = setInterval(() => { const b = Buffer.from('a'); sent.push(b); socket.write(b) }, 500)
    setTimeout(() => { clearInterval(drip); socket.end() }, dripMs)
  })
}

describe('proxy listeners', () => {
  let agent: Agent
  let echo: Server
  let ports: { echo: number, hashed: number, unreachable: number }

  async function passesThrough (): Promise<void> {
    const { sent, back } = await echoed(ports.echo, Buffer.from('through the proxy'))
    assert.deepEqual(back, sent)
  }

  async function recovered (): Promise<void> {
    await agent.settled()
    await passesThrough()
  }

  before(async () => {
    let echoPort: number
    ;({ server: echo, port: echoPort } = await startEcho())
    // Endpoints on this node, interception none: every service still gets its loopback listener.
    agent = await startAgent({ services: services(echoPort) })
    const listener = (key: string): number => {
      const port = agent.ports.proxy[key]
      assert.ok(port !== undefined, `no listener for ${key}: ${JSON.stringify(agent.ports.proxy)}`)
      return port
    }
    // hostname-svc's endpoints are on other nodes, which this agent cannot reach.
    ports = { echo: listener('10.96.0.200/tcp/7000'), hashed: listener('10.96.0.201/tcp/7000'), unreachable: listener('10.96.0.100/tcp/12345') }
    await passesThrough()
    agent.markBaseline()
  })
  after(async () => {
    await agent?.stop()
    echo?.close()
  })

  test('200 connections of 4 KiB random bytes reach the endpoint and come back unchanged', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, async () => await echoed(ports.echo, randomBytes(4096))))
    for (const { sent, back } of results) assert.ok(back.equals(sent))
    await recovered()
  })

  test('200 connections of 4 KiB random bytes to a service without a reachable endpoint are reset', async () => {
    const r = await flood(ports.unreachable, { connections: 200, send: () => randomBytes(4096), end: true, holdMs: DIAL_MS + MARGIN_MS })
    assertClosed(r, 200, { maxMs: DIAL_MS + MARGIN_MS })
    await recovered()
  })

  test('a request head cut short, then EOF, reaches a header-hashed endpoint as it was', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, async () => await echoed(ports.hashed, Buffer.from('GET / HTTP/1.1\r\nX-User:'))))
    for (const { sent, back } of results) assert.ok(back.equals(sent))
    await recovered()
  })

  test('300 silent connections are kept open, and released when the clients leave', async () => {
    const r = await flood(ports.echo, { connections: 300, holdMs: 3000 })
    assert.equal(r.held, 300)
    await recovered()
  })

  test('300 silent connections to a service without a reachable endpoint are reset within the 10 s dial budget', async () => {
    const r = await flood(ports.unreachable, { connections: 300, holdMs: DIAL_MS + MARGIN_MS })
    assertClosed(r, 300, { maxMs: DIAL_MS + MARGIN_MS })
    await recovered()
  })

  test('50 connections dripping a request head past the 5 s peek get every byte to a header-hashed endpoint', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, async () => await echoed(ports.hashed, Buffer.from('GET / HTTP/1.1\r\nX-User: '), PEEK_MS + 1000)))
    for (const { sent, back } of results) assert.ok(back.equals(sent))
    await recovered()
  })

  test('a 1 MiB request head reaches a header-hashed endpoint unchanged', async () => {
    const head = Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nX-User: '), Buffer.alloc(1024 * 1024, 0x61), Buffer.from('\r\n\r\n')])
    const results = await Promise.all(Array.from({ length: 20 }, async () => await echoed(ports.hashed, head)))
    for (const { sent, back } of results) assert.ok(back.equals(sent))
    await recovered()
  })
})
