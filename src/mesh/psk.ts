import { createHash, randomBytes } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { TunnelPskError } from './errors.ts'

/**
 * Upstream EdgeMesh's PSK → libp2p private-network key derivation (compat:
 * must match the Go code byte for byte):
 *   hex = lowercase hex(sha256(file bytes, trailing newline included))
 *   key = first 32 bytes of base64-decode(hex)
 * The hex text is mis-decoded as base64 upstream, so the key carries less
 * entropy than 32 random bytes would; we keep it for wire compatibility.
 */
export function derivePnetKey (pskFileBytes: Uint8Array): Buffer {
  const hex = createHash('sha256').update(pskFileBytes).digest('hex')
  return Buffer.from(hex, 'base64').subarray(0, 32)
}

/** A libp2p pnet key file (`/key/swarm/psk/1.0.0/` in base16) for the derived key. */
export function pnetKeyFile (key: Uint8Array): string {
  return `/key/swarm/psk/1.0.0/\n/base16/\n${Buffer.from(key).toString('hex')}`
}

/** A new PSK: 32 random bytes, base64 (what `openssl rand -base64 32` prints). */
export function generatePsk (): string {
  return randomBytes(32).toString('base64')
}

/**
 * PSKs that are public: the seed guide's placeholder and upstream's chart
 * default (published in its values.yaml, so anyone can join a mesh that kept
 * it). Refused by the agent, the charts and install.sh alike.
 */
export const PUBLIC_PSKS: readonly string[] = ['<your-psk-string>', 'JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=']

/** Why a PSK must not be used, or undefined. */
export function publicPskReason (psk: string): string | undefined {
  const text = psk.trim()
  if (PUBLIC_PSKS.includes(text)) return text.startsWith('<') ? 'it is the placeholder from the install guide' : 'it is the default of upstream\'s Helm chart, published for anyone to read'
  if (/^<[^<>]*>$/.test(text)) return 'it looks like a placeholder (<...>)'
  return undefined
}

/** Reads the PSK file and derives the 32-byte private-network key both peer transports use. */
export async function readPnetKey (file: string): Promise<Buffer> {
  let bytes: Buffer
  try {
    bytes = await readFile(file)
  } catch (err) {
    throw new TunnelPskError(file, (err as NodeJS.ErrnoException).code ?? String(err), { cause: err })
  }
  if (bytes.length === 0) throw new TunnelPskError(file, 'the file is empty')
  const reason = publicPskReason(bytes.toString('utf8'))
  if (reason !== undefined) throw new TunnelPskError(file, `${reason}; every node needs the same secret one`)
  return derivePnetKey(bytes)
}

/**
 * Why the PSK file is exposed to other users of the host (group or world
 * permission bits), or undefined. A warning, not a refusal: a ConfigMap or a
 * Secret mounted with Kubernetes' default mode is 0644.
 */
export async function pskFileExposure (file: string): Promise<string | undefined> {
  const mode = (await stat(file)).mode & 0o777
  if ((mode & 0o077) === 0) return undefined
  return `mode ${mode.toString(8).padStart(4, '0')} lets other users of the host read the mesh's secret; chmod 600 it (in Kubernetes: defaultMode: 0400 on its volume)`
}
