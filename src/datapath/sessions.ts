/**
 * Resumable sessions (resumable.ts) for connections on punched paths: the
 * opener names each session on its first carrier; when the carrier is lost,
 * the opener reconnects (through a relay) and both ends swap how many bytes
 * they received, so each sends again what the other missed. The other end
 * keeps a lost session `resumeWithinMs` for that, then gives up.
 */
import { randomBytes } from 'node:crypto'
import type { Duplex } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../observability/logger.ts'
import { Resumable } from './resumable.ts'
import { decodeOpen, decodeResume, decodeResumed, encodeOpen, encodeResume, encodeResumed, OPEN_BYTES, RESUME_BYTES, RESUMED_BYTES, SESSION_ID_BYTES } from './resume-wire.ts'
import { readExactly } from '../net/socket-io.ts'

export { SESSION_MAGIC } from './resume-wire.ts'

export interface SessionsInit {
  /** How long a lost session waits for its opener to resume it. @default 10000 */
  resumeWithinMs?: number
  /** Nothing heard for this long while active: the carrier is lost. @default 1000 */
  silenceMs?: number
}

export class ResumableSessions {
  readonly #log: Logger
  readonly #key: () => Buffer
  readonly #resumeWithinMs: number
  readonly #silenceMs: number
  readonly #accepted = new Map<string, Resumable>()

  constructor (deps: { logger: Logger, key: () => Buffer }, init: SessionsInit = {}) {
    this.#log = deps.logger
    this.#key = deps.key
    this.#resumeWithinMs = init.resumeWithinMs ?? 10_000
    this.#silenceMs = init.silenceMs ?? 1000
  }

  /** Sessions this node accepted that are open now. */
  get size (): number {
    return this.#accepted.size
  }

  /** The opener's side over a fresh `carrier`; `reconnect` gives a new carrier to the same peer when it is lost. */
  open (peer: string, carrier: Duplex, reconnect: (signal: AbortSignal) => Promise<Duplex>): Resumable {
    const id = randomBytes(SESSION_ID_BYTES)
    carrier.write(encodeOpen(id))
    const session = new Resumable({ silenceMs: this.#silenceMs })
    session.attach(carrier, 0)
    session.on('lost', () => { this.#resume(peer, id, session, reconnect).catch(() => {}) })
    session.on('error', (err: Error) => { this.#log.debug('session ended', { peer, err: err.message }) })
    return session
  }

  /** The other side: reads the session's id from a fresh carrier. */
  async accept (carrier: Duplex, timeoutMs: number): Promise<Resumable> {
    carrier.on('error', () => {})
    const id = decodeOpen(await readExactly(carrier, OPEN_BYTES, timeoutMs))
    if (id === undefined) throw new Error('not a session opening')
    const key = id.toString('hex')
    const session = new Resumable({ silenceMs: this.#silenceMs })
    session.attach(carrier, 0)
    session.on('error', (err: Error) => { this.#log.debug('session ended', { err: err.message }) })
    this.#accepted.set(key, session)
    session.once('close', () => { if (this.#accepted.get(key) === session) this.#accepted.delete(key) })
    session.on('lost', () => {
      setTimeout(() => { if (!session.attached) session.destroy(new Error(`not resumed within ${this.#resumeWithinMs} ms`)) }, this.#resumeWithinMs).unref()
    })
    return session
  }

  /** A new carrier that starts with a resume request: the session it names carries on over it. */
  async resume (carrier: Duplex, timeoutMs: number): Promise<void> {
    carrier.on('error', () => {})
    const request = decodeResume(this.#key(), await readExactly(carrier, RESUME_BYTES, timeoutMs))
    if (request === undefined) throw new Error('not a valid resume request (another PSK?)')
    const session = this.#accepted.get(request.id.toString('hex'))
    if (session === undefined || session.destroyed) throw new Error('no such session (it ended, or waited too long)')
    carrier.write(encodeResumed(this.#key(), request.id, session.received))
    session.attach(carrier, request.received)
  }

  async #resume (peer: string, id: Buffer, session: Resumable, reconnect: (signal: AbortSignal) => Promise<Duplex>): Promise<void> {
    const deadline = Date.now() + this.#resumeWithinMs
    const errors: string[] = []
    while (!session.destroyed && !session.attached && Date.now() < deadline) {
      let carrier: Duplex | undefined
      try {
        carrier = await reconnect(AbortSignal.timeout(Math.max(1, deadline - Date.now())))
        carrier.on('error', () => {})
        carrier.write(encodeResume(this.#key(), id, session.received))
        const peerReceived = decodeResumed(this.#key(), id, await readExactly(carrier, RESUMED_BYTES, 5000))
        if (peerReceived === undefined) throw new Error('the peer\'s answer does not match')
        if (session.destroyed) { carrier.destroy(); return }
        session.attach(carrier, peerReceived)
        this.#log.debug('connection carried on over another path', { peer })
        return
      } catch (err) {
        carrier?.destroy()
        errors.push((err as Error).message)
        await sleep(200)
      }
    }
    if (!session.attached && !session.destroyed) session.destroy(new Error(`not resumed within ${this.#resumeWithinMs} ms: ${errors.slice(-2).join('; ')}`))
  }
}
