import pino from 'pino'
import type { DestinationStream, Logger as PinoLogger } from 'pino'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
export type LogFields = Record<string, unknown>

/**
 * The logger every component receives. Messages are short, constant strings;
 * everything variable goes into `fields` so JSON logs stay queryable.
 */
export interface Logger {
  debug (msg: string, fields?: LogFields): void
  info (msg: string, fields?: LogFields): void
  warn (msg: string, fields?: LogFields): void
  error (msg: string, fields?: LogFields): void
  /** A child logger whose lines carry `component: name`. */
  forComponent (name: string): Logger
  setLevel (level: LogLevel): void
}

export interface LoggerInit {
  /** @default 'info' */
  level?: LogLevel
  /** 'json' for containers, 'pretty' for a terminal. @default json unless stderr is a TTY */
  format?: 'json' | 'pretty'
  /** Where lines go. @default process.stderr */
  destination?: NodeJS.WritableStream
}

class PinoAdapter implements Logger {
  readonly #pino: PinoLogger
  constructor (p: PinoLogger) { this.#pino = p }
  debug (msg: string, fields?: LogFields): void { this.#pino.debug(fields ?? {}, msg) }
  info (msg: string, fields?: LogFields): void { this.#pino.info(fields ?? {}, msg) }
  warn (msg: string, fields?: LogFields): void { this.#pino.warn(fields ?? {}, msg) }
  error (msg: string, fields?: LogFields): void { this.#pino.error(fields ?? {}, msg) }
  forComponent (name: string): Logger { return new PinoAdapter(this.#pino.child({ component: name })) }
  setLevel (level: LogLevel): void { this.#pino.level = level }
}

/** Builds the process logger. Pretty output loads pino-pretty lazily (TTY only). */
export async function createLogger (init: LoggerInit = {}): Promise<Logger> {
  const destination = init.destination ?? process.stderr
  const format = init.format ?? ((destination as { isTTY?: boolean }).isTTY === true ? 'pretty' : 'json')
  let stream = destination as DestinationStream
  if (format === 'pretty') {
    try {
      const { default: pretty } = await import('pino-pretty')
      stream = pretty({ destination, sync: true, colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' })
    } catch {
      // The bundle leaves pino-pretty out; without it a terminal gets JSON too.
    }
  }
  const p = pino({
    level: init.level ?? 'info',
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.err }
  }, stream)
  return new PinoAdapter(p)
}

/** A logger that drops everything: the twin for tests that do not read logs. */
export const noopLogger: Logger = {
  debug () {},
  info () {},
  warn () {},
  error () {},
  forComponent () { return noopLogger },
  setLevel () {}
}
