import type { Logger, LogFields } from '../../src/observability/logger.ts'

export interface LogLine { level: string, component: string, msg: string, fields: LogFields | undefined }

/** A logger that keeps its lines (with the component) for assertions. */
export function recordingLogger (lines: LogLine[], component = ''): Logger {
  const at = (level: string) => (msg: string, fields?: LogFields): void => { lines.push({ level, component, msg, fields }) }
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    forComponent: (name: string) => recordingLogger(lines, name),
    setLevel () {}
  }
}
