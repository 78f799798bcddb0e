/**
 * Reachability probe. Prints one JSON array, one result per target, and
 * exits 0 whatever the targets answered (the caller judges).
 *   probe.ts tcp HOST:PORT... [--timeout 2000] [--message ping]
 *     connects, sends the message and a newline, reads one line back.
 *   probe.ts udp HOST:PORT... [--local-port N] [--timeout 2000] [--message ping]
 *     sends from ONE socket to every target (so a NAT maps them together),
 *     resending every 200 ms until each answered or the timeout.
 */
import { connect } from 'node:net'
import { createSocket } from 'node:dgram'
import { parseArgs } from 'node:util'

export interface ProbeResult {
  target: string
  ok: boolean
  reply?: string
  error?: string
  ms: number
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    timeout: { type: 'string', default: '2000' },
    message: { type: 'string', default: 'ping' },
    'local-port': { type: 'string', default: '0' }
  }
})
const [mode, ...targets] = positionals
const timeoutMs = Number(values.timeout)

function split (target: string): [string, number] {
  const i = target.lastIndexOf(':')
  return [target.slice(0, i), Number(target.slice(i + 1))]
}

function tcpProbe (target: string): Promise<ProbeResult> {
  const [host, port] = split(target)
  const t0 = performance.now()
  return new Promise(resolve => {
    let data = ''
    let done = false
    const finish = (r: Omit<ProbeResult, 'target' | 'ms'>): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      resolve({ target, ...r, ms: Math.round(performance.now() - t0) })
    }
    const sock = connect({ host, port })
    const timer = setTimeout(() => finish({ ok: false, error: 'timeout' }), timeoutMs)
    sock.on('connect', () => sock.write(`${values.message}\n`))
    sock.on('data', (b: Buffer) => {
      data += b.toString()
      const nl = data.indexOf('\n')
      if (nl >= 0) finish({ ok: true, reply: data.slice(0, nl) })
    })
    sock.on('end', () => finish({ ok: data !== '', reply: data, error: data === '' ? 'closed' : undefined }))
    sock.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: err.code ?? err.message }))
  })
}

async function udpProbe (list: string[]): Promise<ProbeResult[]> {
  const sock = createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject)
    sock.bind(Number(values['local-port']), () => resolve())
  })
  const t0 = performance.now()
  const results = new Map<string, ProbeResult>()
  sock.on('message', (msg, rinfo) => {
    const target = `${rinfo.address}:${rinfo.port}`
    if (list.includes(target) && !results.has(target)) {
      results.set(target, { target, ok: true, reply: msg.toString(), ms: Math.round(performance.now() - t0) })
    }
  })
  sock.on('error', () => {})
  const deadline = Date.now() + timeoutMs
  for (let round = 0; round < 1000 && results.size < list.length && Date.now() < deadline; round++) {
    for (const target of list) {
      if (results.has(target)) continue
      const [host, port] = split(target)
      sock.send(values.message, port, host)
    }
    await new Promise(resolve => setTimeout(resolve, Math.min(200, Math.max(0, deadline - Date.now()))))
  }
  sock.close()
  return list.map(target => results.get(target) ?? { target, ok: false, error: 'timeout', ms: timeoutMs })
}

if ((mode !== 'tcp' && mode !== 'udp') || targets.length === 0) {
  process.stderr.write('usage: probe.ts tcp|udp HOST:PORT... [--timeout ms] [--message text] [--local-port N]\n')
  process.exit(2)
}
const results = mode === 'tcp' ? await Promise.all(targets.map(tcpProbe)) : await udpProbe(targets)
process.stdout.write(JSON.stringify(results) + '\n')
