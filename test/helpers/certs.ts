// Throw-away certificates made with the openssl CLI: a CA, server certificates
// for names and 127.0.0.1, and a client certificate (for mutual TLS).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Pair { cert: string, key: string }
export interface TestCerts { ca: string, caKey: string, issue: (cn: string, names?: string[]) => Pair, close: () => void }

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

/** Runs the openssl CLI in `dir`. */
export function openssl (dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

/** A throw-away CA in `dir`: ca.key, ca.crt. */
export function makeCa (dir: string): void {
  openssl(dir, ['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=edgemesh-test-ca'])
}

/** `name`.key and `name`.crt in `dir`, signed by the CA there, with subject `subj` and the extensions `ext` (openssl's extfile lines). */
export function issueSigned (dir: string, name: string, subj: string, ext: string): void {
  openssl(dir, ['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj])
  writeFileSync(join(dir, `${name}.ext`), ext)
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`])
}

export function makeCerts (): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'em-certs-'))
  makeCa(dir)
  let serial = 0
  return {
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    caKey: readFileSync(join(dir, 'ca.key'), 'utf8'),
    issue (cn, names = []) {
      const n = String(++serial)
      const san = names.map(s => /^[\d.]+$/.test(s) ? `IP:${s}` : `DNS:${s}`).join(',')
      issueSigned(dir, n, `/CN=${cn}`, san === '' ? 'basicConstraints=CA:FALSE\n' : `subjectAltName=${san}\n`)
      return { cert: readFileSync(join(dir, `${n}.crt`), 'utf8'), key: readFileSync(join(dir, `${n}.key`), 'utf8') }
    },
    close () { rmSync(dir, { recursive: true, force: true }) }
  }
}

/** A kubernetes.io/tls Secret (as YAML-able object) holding a pair, and a CA when given. */
export function tlsSecret (name: string, pair: Pair, ca?: string, namespace = 'default'): Record<string, unknown> {
  const data: Record<string, string> = { 'tls.crt': Buffer.from(pair.cert).toString('base64'), 'tls.key': Buffer.from(pair.key).toString('base64') }
  if (ca !== undefined) data['ca.crt'] = Buffer.from(ca).toString('base64')
  return { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace }, data }
}
