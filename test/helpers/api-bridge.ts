/**
 * Makes the host's 127.0.0.1:`port` (a test API server) answer at
 * 127.0.0.1:`port` inside network namespaces too, so agents there keep the
 * kubeconfig and its certificate as they are: host side a Unix socket to the
 * API server (a path crosses namespaces), namespace side a forwarder process
 * per namespace from the port to that socket. Used by tests and benches.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { connect, createServer } from 'node:net'
import type { Server } from 'node:net'
import { join } from 'node:path'
import { splice } from '../../src/net/splice.ts'

export interface ApiBridge { stop: () => Promise<void> }

export async function bridgeApiIntoNetns (port: number, namespaces: readonly string[], dir: string): Promise<ApiBridge> {
  const socketPath = join(dir, `api-${port}.sock`)
  const host: Server = createServer(s => { splice(s, connect(port, '127.0.0.1')) })
  await new Promise<void>(resolve => host.listen(socketPath, resolve))
  const script = `const net = require('node:net'); net.createServer(s => { const c = net.connect(${JSON.stringify(socketPath)}); s.pipe(c).pipe(s); s.on('error', () => c.destroy()); c.on('error', () => s.destroy()) }).listen(${port}, '127.0.0.1', () => console.log('ready'))`
  const inner: ChildProcess[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(inner.map(async p => {
      if (p.exitCode !== null || p.signalCode !== null) return
      p.kill()
      await new Promise(resolve => p.once('exit', resolve))
    }))
    host.close()
  }
  try {
    for (const ns of namespaces) {
      const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
      inner.push(p)
      await new Promise<void>((resolve, reject) => {
        p.stdout?.once('data', () => { resolve() })
        p.once('exit', code => { reject(new Error(`API forwarder in ${ns} exited with ${code}`)) })
      })
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { stop }
}
