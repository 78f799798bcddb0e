/** The client side of a data path TLS 1.3 handshake with the pair's external PSK, bounded by the control timeout. */
import type { Duplex } from 'node:stream'
import type { SecureContext, TLSSocket } from 'node:tls'
import { CONTROL_TIMEOUT_MS } from './wire.ts'

/** Handshakes on `raw` as `identity` with `psk`; rejects, naming the likely cause, when it fails, closes or times out. */
export async function tlsHandshake (connect: typeof import('node:tls').connect, raw: Duplex, init: { context: SecureContext, identity: string, psk: Uint8Array, server: string }): Promise<TLSSocket> {
  const { identity, psk, server } = init
  const socket = connect({
    socket: raw,
    secureContext: init.context,
    pskCallback: () => ({ psk, identity }),
    checkServerIdentity: () => undefined
  })
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      socket.off('secureConnect', onSecure)
      socket.off('error', onError)
      socket.off('close', onClose)
      if (err === undefined) { resolve(); return }
      socket.destroy()
      reject(err)
    }
    const onSecure = (): void => done()
    const onError = (err: Error): void => done(new Error(`TLS handshake failed (another PSK, or not ${server}): ${err.message}`))
    const onClose = (): void => done(new Error('closed during the TLS handshake (another PSK?)'))
    const timer = setTimeout(() => done(new Error('TLS handshake timed out (another PSK?)')), CONTROL_TIMEOUT_MS)
    socket.once('secureConnect', onSecure)
    socket.once('error', onError)
    socket.once('close', onClose)
  })
  return socket
}
