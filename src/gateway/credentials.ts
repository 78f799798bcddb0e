/**
 * TLS credentials of Gateway servers, from `kubernetes.io/tls` Secrets
 * (`tls.crt`, `tls.key`, and `ca.crt` or a `<name>-cacert` Secret for MUTUAL,
 * as Istio reads them). Each Secret becomes a SecureContext once per version;
 * a Secret that stops loading keeps its last good context and is logged.
 */
import { createHash } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import type { SecureContext, SecureContextOptions } from 'node:tls'
import type { KubeObject } from '../kube/types.ts'
import { GatewayCredentialError } from './errors.ts'
import type { TerminateTls } from './route-table.ts'

interface SecretObject extends KubeObject {
  type?: string
  data?: Record<string, string>
}

interface Loaded {
  version: string
  options: SecureContextOptions
  context: SecureContext
}

function decode (data: Record<string, string> | undefined, key: string): Buffer | undefined {
  const v = data?.[key]
  return v === undefined || v === '' ? undefined : Buffer.from(v, 'base64')
}

/** The API's resourceVersion; a digest of the data where there is none (standalone files). */
function versionOf (obj: SecretObject | undefined): string {
  if (obj === undefined) return 'absent'
  return obj.metadata.resourceVersion ?? createHash('sha256').update(JSON.stringify(obj.data ?? {})).digest('base64url')
}

export class Credentials {
  readonly #get: (key: string) => KubeObject | undefined
  readonly #loaded = new Map<string, Loaded>()

  /** `get` reads a Secret by `namespace/name` from the informer's store. */
  constructor (get: (key: string) => KubeObject | undefined) {
    this.#get = get
  }

  /**
   * The context options for one Secret under one listener's TLS settings;
   * throws GatewayCredentialError when the Secret cannot be used and no
   * earlier version of it loaded.
   */
  options (secret: string, tls: TerminateTls): SecureContextOptions {
    const loaded = this.#load(secret, tls)
    return loaded.options
  }

  context (secret: string, tls: TerminateTls): SecureContext {
    return this.#load(secret, tls).context
  }

  /** Why a Secret cannot serve a certificate (the check a TLS listener's handshakes make), or undefined when it can. */
  problem (secret: string): string | undefined {
    try {
      this.#load(secret, { mode: 'SIMPLE', credentials: [], ciphers: [] })
      return undefined
    } catch (err) {
      return err instanceof GatewayCredentialError ? err.why : (err as Error).message
    }
  }

  /** Forgets Secrets no listener names any more. */
  retain (secrets: ReadonlySet<string>): void {
    for (const key of this.#loaded.keys()) if (!secrets.has(key.split('|')[0] ?? '')) this.#loaded.delete(key)
  }

  #load (secret: string, tls: TerminateTls): Loaded {
    const settingsKey = `${secret}|${tls.mode}|${tls.minVersion ?? ''}|${tls.maxVersion ?? ''}|${tls.ciphers.join(':')}`
    const previous = this.#loaded.get(settingsKey)
    const obj = this.#get(secret) as SecretObject | undefined
    const caObj = this.#get(`${secret}-cacert`) as SecretObject | undefined
    const version = `${versionOf(obj)}/${versionOf(caObj)}`
    if (previous !== undefined && previous.version === version) return previous
    try {
      const loaded = { version, ...this.#build(secret, obj, caObj, tls) }
      this.#loaded.set(settingsKey, loaded)
      return loaded
    } catch (err) {
      if (previous !== undefined) return previous
      throw err
    }
  }

  #build (secret: string, obj: SecretObject | undefined, caObj: SecretObject | undefined, tls: TerminateTls): { options: SecureContextOptions, context: SecureContext } {
    if (obj === undefined) throw new GatewayCredentialError(secret, 'not found')
    if (obj.type !== undefined && obj.type !== 'kubernetes.io/tls' && obj.type !== 'Opaque') throw new GatewayCredentialError(secret, `has type ${obj.type}; kubernetes.io/tls expected`)
    const cert = decode(obj.data, 'tls.crt') ?? decode(obj.data, 'cert')
    const key = decode(obj.data, 'tls.key') ?? decode(obj.data, 'key')
    if (cert === undefined || key === undefined) throw new GatewayCredentialError(secret, 'lacks tls.crt or tls.key')
    const options: SecureContextOptions = { cert, key }
    if (tls.mode === 'MUTUAL') {
      const ca = decode(obj.data, 'ca.crt') ?? decode(obj.data, 'cacert') ?? decode(caObj?.data, 'ca.crt') ?? decode(caObj?.data, 'cacert')
      if (ca === undefined) throw new GatewayCredentialError(secret, `MUTUAL needs the client CA: ca.crt in the Secret or a Secret ${secret}-cacert`)
      options.ca = ca
    }
    if (tls.minVersion !== undefined) options.minVersion = tls.minVersion
    if (tls.maxVersion !== undefined) options.maxVersion = tls.maxVersion
    if (tls.ciphers.length > 0) options.ciphers = tls.ciphers.join(':')
    try {
      return { options, context: createSecureContext(options) }
    } catch (err) {
      throw new GatewayCredentialError(secret, `does not load: ${(err as Error).message}`, { cause: err })
    }
  }
}
