/**
 * The punching socket's port, kept across restarts. Each new port gets a new
 * mapping from the router, and one left by an agent that did not stop
 * cleanly (killed, crashed) stays there for its lifetime (2 h): miniupnpd
 * answers about 5 ms slower per mapping it holds, so an agent restarting
 * every minute would, within the hour, get no answer within the 1 s the
 * mapper waits. With the same port the router renews the one mapping.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Logger } from '../observability/logger.ts'

interface Bindable {
  bind: (port: number, host: string) => void
  address: () => { port: number }
}

/** Binds `socket` to the port kept in `file` when it is free, else to any port, and keeps that one. */
export async function bindKeptPort (socket: Bindable, host: string, file: string, log: Logger): Promise<void> {
  const kept = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10)
  let bound = false
  if (Number.isInteger(kept) && kept > 0 && kept < 65_536) {
    try {
      socket.bind(kept, host)
      bound = true
    } catch (err) {
      log.debug('the punching socket\'s previous port is taken; another one is used', { port: kept, err: (err as Error).message })
    }
  }
  if (!bound) socket.bind(0, host)
  const port = socket.address().port
  if (port === kept) return
  try {
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, `${port}\n`)
  } catch (err) {
    log.debug('cannot keep the punching socket\'s port', { file, err: (err as Error).message })
  }
}
