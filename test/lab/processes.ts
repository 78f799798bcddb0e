/**
 * Processes started inside a lab node's namespace. stdout and stderr go to
 * one log file per process under the lab's log dir (logs/<node>/<name>.log).
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { setTimeout as delay } from 'node:timers/promises'
import { findBinary } from './netns.ts'

export interface ExitInfo {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface SpawnRequest {
  node: string
  pod?: string
  /** Namespace name to enter (the node's, or its pod view). */
  netns: string
  argv: readonly string[]
  env: NodeJS.ProcessEnv
  logPath: string
  cwd?: string
}

export class LabProcess {
  readonly node: string
  readonly pod: string | undefined
  readonly argv: readonly string[]
  readonly logPath: string
  readonly pid: number
  #exited: Promise<ExitInfo>
  #child: ChildProcess
  #exit: ExitInfo | undefined

  constructor (req: SpawnRequest) {
    this.node = req.node
    this.pod = req.pod
    this.argv = req.argv
    this.logPath = req.logPath
    const fd = openSync(req.logPath, 'a')
    try {
      this.#child = spawn(findBinary('ip') ?? 'ip', ['netns', 'exec', req.netns, ...req.argv], {
        stdio: ['ignore', fd, fd],
        env: req.env,
        cwd: req.cwd
      })
    } finally {
      closeSync(fd)
    }
    if (this.#child.pid === undefined) throw new Error(`cannot start ${req.argv.join(' ')} on ${req.node}`)
    this.pid = this.#child.pid
    this.#exited = new Promise(resolve => {
      this.#child.once('exit', (code, signal) => {
        this.#exit = { code, signal }
        resolve(this.#exit)
      })
    })
    this.#child.on('error', () => {})
    // The lab's exit hooks kill it; it must not keep a finished test process alive.
    this.#child.unref()
  }

  get running (): boolean {
    return this.#exit === undefined
  }

  get exitInfo (): ExitInfo | undefined {
    return this.#exit
  }

  /** Resolves when the process has exited (and keeps the event loop alive until then). */
  wait (): Promise<ExitInfo> {
    if (this.#exit === undefined) this.#child.ref()
    return this.#exited
  }

  /** SIGTERM, then SIGKILL if it is still running after `graceMs`. Idempotent. */
  async stop (options: { graceMs?: number } = {}): Promise<ExitInfo> {
    if (this.#exit !== undefined) return this.#exit
    this.#child.kill('SIGTERM')
    const ac = new AbortController()
    delay(options.graceMs ?? 3000, undefined, { signal: ac.signal }).then(() => {
      if (this.#exit === undefined) this.#child.kill('SIGKILL')
    }, () => {})
    const info = await this.wait()
    ac.abort()
    return info
  }

  /** Everything the process wrote so far. */
  async output (): Promise<string> {
    try {
      return await readFile(this.logPath, 'utf8')
    } catch {
      return ''
    }
  }

  /**
   * Polls the log until `pattern` appears; rejects on timeout or if the
   * process exits first, with the log's tail in the message.
   */
  async waitForOutput (pattern: RegExp | string, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (let i = 0; i < 10_000; i++) {
      const text = await this.output()
      const hit = typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text)
      if (hit) return text
      if (this.#exit !== undefined) {
        throw new Error(`${this.describe()} exited (${this.#exit.code ?? this.#exit.signal}) before printing ${String(pattern)}\n${tail(text)}`)
      }
      if (Date.now() >= deadline) break
      await delay(25)
    }
    throw new Error(`${this.describe()} did not print ${String(pattern)} within ${timeoutMs} ms\n${tail(await this.output())}`)
  }

  describe (): string {
    return `${this.argv.join(' ')} on ${this.node}${this.pod === undefined ? '' : ` (pod ${this.pod})`}`
  }
}

function tail (text: string): string {
  return text.split('\n').slice(-20).join('\n')
}
