/**
 * The agent's status endpoint: `/healthz` (the process serves requests),
 * `/readyz` (every component ready: informers synced, DNS bound, rules
 * installed), `/metrics` (Prometheus) and `/status` (JSON for
 * `edgemesh status`), plus `POST /loglevel` to change the log level at
 * runtime. Probes and scrapers use it; it never blocks the data path.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import type { Component } from '../lifecycle/component.ts'
import type { StatusDocument } from './status.ts'
import type { Logger } from './logger.ts'

export interface StatusSource {
  /** Names of components that are not ready; empty when ready. */
  notReady (): string[]
  /** Changes the log level at runtime (`POST /loglevel` with `debug`, `info`, `warn` or `error`). */
  setLogLevel? (level: string): boolean
  /** A JSON-serialisable summary (services, rules, peers, …). */
  status (): StatusDocument | Promise<StatusDocument>
}

export interface StatusServerInit {
  address: string
  port: number
  /** Serve only `/metrics` (upstream's `metricConfig` listener). @default false */
  metricsOnly?: boolean
  /** Overrides of STATUS_SERVER_LIMITS (tests shorten them). */
  limits?: Partial<StatusServerLimits>
}

/** Bounds on what one client can hold: probes and scrapers send small requests at once. */
export interface StatusServerLimits {
  /** Request headers must arrive within this (slow-drip clients are cut with 408). */
  headersTimeoutMs: number
  /** The whole request must arrive within this. */
  requestTimeoutMs: number
  /** Idle keep-alive connections are closed after this. */
  keepAliveTimeoutMs: number
  /** How often the two timeouts above are checked: Node's default (30 s) would stretch them. */
  checkIntervalMs: number
  /** Connections beyond this are refused. */
  maxConnections: number
}

export const STATUS_SERVER_LIMITS: StatusServerLimits = {
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5000,
  checkIntervalMs: 1000,
  maxConnections: 64
}

export class StatusServer implements Component {
  readonly name: string
  readonly #log: Logger
  readonly #registry: Registry
  readonly #source: () => StatusSource
  readonly #init: StatusServerInit
  #server: Server | undefined

  constructor (deps: { logger: Logger, metrics: Registry, source: () => StatusSource }, init: StatusServerInit) {
    this.#log = deps.logger
    this.#registry = deps.metrics
    this.#source = deps.source
    this.#init = init
    this.name = init.metricsOnly === true ? 'metrics-server' : 'status-server'
  }

  /** The bound port (useful with port 0 in tests). */
  port (): number | undefined {
    const a = this.#server?.address()
    return typeof a === 'object' && a !== null ? a.port : undefined
  }

  async start (): Promise<void> {
    if (this.#server !== undefined) return
    // getBuiltinModule: `import http` would load undici through a lazy getter (+13 MB RSS).
    const limits = { ...STATUS_SERVER_LIMITS, ...this.#init.limits }
    const server = process.getBuiltinModule('node:http').createServer({
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: limits.checkIntervalMs
    }, (req, res) => { this.#handle(req, res).catch(() => res.destroy()) })
    server.maxConnections = limits.maxConnections
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(this.#init.port, this.#init.address, () => { server.off('error', reject); resolve() })
      })
    } catch (err) {
      // The data path matters more than its status page: run without it and say so (probes will notice).
      this.#log.error('status server not started', { address: this.#init.address, port: this.#init.port, err })
      return
    }
    this.#server = server
    this.#log.info('status server listening', { address: this.#init.address, port: this.port() })
  }

  async stop (): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => resolve()))
  }

  async #handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method === 'POST' && path === '/loglevel' && this.#init.metricsOnly !== true) {
      let body = ''
      for await (const chunk of req) { body += String(chunk); if (body.length > 64) break }
      const level = body.trim()
      const ok = this.#source().setLogLevel?.(level) ?? false
      if (ok) this.#log.info('log level changed', { level })
      return ok ? send(res, 200, `log level ${level}\n`) : send(res, 400, 'expected one of: debug, info, warn, error\n')
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n')
    if (path === '/metrics') {
      const body = await this.#registry.metrics()
      return send(res, 200, body, this.#registry.contentType)
    }
    if (this.#init.metricsOnly === true) return send(res, 404, 'not found\n')
    switch (path) {
      case '/healthz': return send(res, 200, 'ok\n')
      case '/readyz': {
        const waiting = this.#source().notReady()
        return waiting.length === 0 ? send(res, 200, 'ok\n') : send(res, 503, `not ready: ${waiting.join(', ')}\n`)
      }
      case '/status': return send(res, 200, JSON.stringify(await this.#source().status(), null, 2) + '\n', 'application/json')
      default: return send(res, 404, 'not found: try /healthz, /readyz, /metrics, /status\n')
    }
  }
}

function send (res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}
