/** The one connect-with-timeout: every outbound TCP connection of the agent goes through it. */
import { connect } from 'node:net'
import type { Socket, TcpNetConnectOpts } from 'node:net'
import { ConnectTimeoutError } from './errors.ts'

/**
 * Connects to `options.host:port`, failing after `timeoutMs` or when `signal`
 * aborts (the socket is destroyed then). Resolves once connected.
 */
export async function connectWithin (options: TcpNetConnectOpts, timeoutMs: number, signal?: AbortSignal): Promise<Socket> {
  if (signal?.aborted === true) throw abortReason(signal)
  const socket = connect(options)
  return await new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket.off('connect', onConnect)
      socket.off('error', onError)
      if (err !== undefined) { socket.destroy(); reject(err) } else resolve(socket)
    }
    const onConnect = (): void => done()
    const onError = (err: Error): void => done(err)
    const onAbort = (): void => done(abortReason(signal as AbortSignal))
    const timer = setTimeout(() => done(new ConnectTimeoutError(String(options.host), options.port, timeoutMs)), timeoutMs)
    socket.once('connect', onConnect)
    socket.once('error', onError)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

function abortReason (signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('connect aborted')
}
