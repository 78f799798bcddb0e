/**
 * The client's side of early data (`src/mesh/early.ts`): while the far agent
 * connects to the endpoint, the client's bytes already go out, and a copy is
 * kept until the agent answers. A refusal leaves the copy to send to another
 * endpoint; no byte reached the refused one.
 */
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { EndpointRefusedError } from '../mesh/errors.ts'

/** At most this much is sent ahead of the answer; the client waits beyond it. */
export const EARLY_BYTES = 64 * 1024

/** The far agent did not accept the connection; `sent` is every byte taken from the client so far. */
export class EarlySendFailed extends Error {
  readonly sent: Buffer
  readonly clientEnded: boolean
  /** The agent refused the endpoint: it read none of `sent`, which may go to another endpoint. */
  readonly refused: boolean
  constructor (cause: unknown, sent: Buffer, clientEnded: boolean) {
    super((cause as Error).message, { cause })
    this.sent = sent
    this.clientEnded = clientEnded
    this.refused = cause instanceof EndpointRefusedError
  }
}

/**
 * Writes `head` and whatever the client sends to `upstream` until `answered`
 * settles. Resolves with whether the client has ended (its FIN arrived); the
 * client is then paused with no listener of ours, ready to be spliced.
 */
export async function sendEarly (client: Socket, upstream: Duplex, answered: Promise<void>, head: Buffer | undefined, clientEnded: boolean): Promise<{ clientEnded: boolean }> {
  const copy: Buffer[] = []
  let size = 0
  let ended = clientEnded || client.readableEnded
  const send = (chunk: Buffer): void => {
    copy.push(chunk)
    size += chunk.length
    upstream.write(chunk)
    if (size >= EARLY_BYTES) client.pause()
  }
  const onEnd = (): void => { ended = true }
  let onGone = (): void => {}
  const gone = new Promise<never>((_resolve, reject) => {
    onGone = () => { reject(new Error('the client left before the endpoint answered')) }
  })
  gone.catch(() => {})
  if (head !== undefined && head.length > 0) send(head)
  client.once('close', onGone)
  if (!ended) {
    client.on('data', send)
    client.once('end', onEnd)
    if (size < EARLY_BYTES) client.resume()
  }
  try {
    await Promise.race([answered, gone])
    return { clientEnded: ended }
  } catch (err) {
    throw new EarlySendFailed(err, Buffer.concat(copy), ended)
  } finally {
    client.off('data', send)
    client.off('end', onEnd)
    client.off('close', onGone)
    client.pause()
  }
}
