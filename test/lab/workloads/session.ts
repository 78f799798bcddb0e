/**
 * One long-lived TCP connection to an echo server: a numbered line every
 * `--every` ms for `--for` ms, each echo checked in order. Prints one JSON
 * object: lines sent and echoed, whether the connection failed or closed
 * early, and the longest wait for an echo (what an outage on the path cost).
 * After the last line it waits up to `--grace` ms for the echoes still owed.
 *   session.ts HOST:PORT [--for 10000] [--every 100] [--grace 3000]
 */
import { connect } from 'node:net'
import { parseArgs } from 'node:util'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { for: { type: 'string', default: '10000' }, every: { type: 'string', default: '100' }, grace: { type: 'string', default: '3000' } } })
const [host, port] = (positionals[0] ?? '').split(':')
const result = { sent: 0, echoed: 0, outOfOrder: 0, error: undefined as string | undefined, closedEarly: false, longestWaitMs: 0 }
const sentAt: number[] = []
let buffered = ''
let timer: NodeJS.Timeout | undefined
let finished = false
let sending = true

const socket = connect({ host, port: Number(port) })
const finish = (): void => {
  if (finished) return
  finished = true
  clearInterval(timer)
  // An echo still owed counts as a wait up to now.
  if (result.echoed < result.sent) result.longestWaitMs = Math.max(result.longestWaitMs, Date.now() - (sentAt[result.echoed] as number))
  socket.destroy()
  process.stdout.write(JSON.stringify(result) + '\n')
}
socket.setNoDelay(true)
socket.on('connect', () => {
  timer = setInterval(() => {
    sentAt.push(Date.now())
    socket.write(`${result.sent++}\n`)
  }, Number(values.every))
  setTimeout(() => {
    clearInterval(timer)
    sending = false
    if (result.echoed === result.sent) { finish(); return }
    // Time for the last echoes to come back.
    setTimeout(finish, Number(values.grace))
  }, Number(values.for))
})
socket.on('data', chunk => {
  buffered += chunk.toString()
  let nl
  while ((nl = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, nl)
    buffered = buffered.slice(nl + 1)
    if (Number(line) !== result.echoed) result.outOfOrder++
    result.longestWaitMs = Math.max(result.longestWaitMs, Date.now() - (sentAt[result.echoed] as number))
    result.echoed++
  }
  if (!sending && result.echoed === result.sent) finish()
})
socket.on('error', err => { result.error = err.message; finish() })
socket.on('close', () => { if (!finished) { result.closedEarly = true; finish() } })
