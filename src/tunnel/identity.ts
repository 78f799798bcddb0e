/**
 * Node identities of the tunnel.
 *
 * Compat mode reproduces upstream EdgeMesh's key derivation from the node
 * name, so Go and TypeScript agents agree on every node's PeerID without a
 * lookup: seed = the first 32 bytes of Go's math/rand (the pre-1.22 additive
 * lagged Fibonacci source) seeded with the first 8 bytes of MD5(nodeName),
 * key = Ed25519 from that seed. Anyone who knows a node name can compute its
 * private key; the PSK is then the only secret (see README).
 */
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto'

const LEN = 607
const INT32_MAX = 2147483647n
const MASK63 = (1n << 63n) - 1n
const MASK64 = (1n << 64n) - 1n

/**
 * The entries of Go's `rngCooked` table that seeding must mix into the ten
 * words the first five Int63 calls read (indices 329..333 and 602..606); low
 * 63 bits only, which is all Int63 can observe.
 */
const COOKED: ReadonlyMap<number, bigint> = new Map([
  [329, 1620799783996955743n], [330, 220828013409515943n], [331, 8150384699999389761n], [332, 4287360518296753003n], [333, 4590000184845883843n],
  [602, 2944902635677463047n], [603, 7052079073493465134n], [604, 8382142935188824023n], [605, 9103922860780351547n], [606, 4152330101494654406n]
])

/** Go's seedrand: x[n+1] = 48271 · x[n] mod (2^31 − 1), computed without overflow. */
function seedrand (x: number): number {
  const hi = Math.trunc(x / 44488)
  const lo = x % 44488
  let next = 48271 * lo - 3399 * hi
  if (next < 0) next += 2147483647
  return next
}

/** The 32-byte Ed25519 seed upstream derives from a node name. */
export function compatSeed (nodeName: string): Uint8Array {
  const md5 = createHash('md5').update(nodeName, 'utf8').digest()
  let seed = md5.readBigInt64BE(0) % INT32_MAX // Go's % truncates toward zero, as BigInt's does
  if (seed < 0n) seed += INT32_MAX
  if (seed === 0n) seed = 89482311n
  const vec = new Map<number, bigint>()
  let x = Number(seed)
  for (let i = -20; i < LEN; i++) {
    x = seedrand(x)
    if (i < 0) continue
    let u = BigInt(x) << 40n
    x = seedrand(x)
    u ^= BigInt(x) << 20n
    x = seedrand(x)
    u ^= BigInt(x)
    const cooked = COOKED.get(i)
    if (cooked !== undefined) vec.set(i, (u ^ cooked) & MASK64)
  }
  // Rand.Read: each Int63 yields 7 bytes, low byte first; 5 calls cover 32 bytes.
  const out = new Uint8Array(32)
  let n = 0
  for (let k = 0; k < 5; k++) {
    const feed = 333 - k
    const tap = 606 - k
    let val = (((vec.get(feed) as bigint) + (vec.get(tap) as bigint)) & MASK64) & MASK63
    for (let b = 0; b < 7 && n < 32; b++) {
      out[n++] = Number(val & 0xffn)
      val >>= 8n
    }
  }
  return out
}

/** DER of a PKCS#8 Ed25519 private key, up to its 32-byte seed. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

/**
 * The 64-byte raw Ed25519 private key (seed, then public key) upstream
 * derives from a node name, for `privateKeyFromRaw`. The public key comes
 * from OpenSSL: @libp2p/crypto computes it in JavaScript (noble), whose first
 * call builds a table of curve points and compiles the field arithmetic, for
 * every peer name a node looks up.
 */
export function compatRawKey (nodeName: string): Uint8Array {
  const seed = compatSeed(nodeName)
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' })
  return Buffer.concat([seed, Buffer.from(jwk.x as string, 'base64url')])
}
