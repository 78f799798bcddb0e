/**
 * The server name (SNI) of a TLS ClientHello, read without terminating TLS:
 * what PASSTHROUGH servers route by. Pure; the caller buffers the first
 * record (at most 16 KiB plus its header) and hands the bytes over.
 */

/** Largest first record read before giving up (a TLS record's maximum, plus its header). */
export const MAX_HELLO_BYTES = 16_384 + 5

export type HelloResult = { state: 'need-more' } | { state: 'not-tls' } | { state: 'done', serverName: string | undefined }

export function readServerName (buf: Buffer): HelloResult {
  if (buf.length < 5) return { state: 'need-more' }
  if (buf[0] !== 0x16) return { state: 'not-tls' }
  const recordLength = buf.readUInt16BE(3)
  if (recordLength > 16_384) return { state: 'not-tls' }
  if (buf.length < 5 + recordLength) return { state: 'need-more' }
  const hello = buf.subarray(5, 5 + recordLength)
  // A ClientHello split over several records is legal but unseen in practice: routed as "no SNI".
  if (hello[0] !== 0x01 || hello.length < 4) return { state: 'not-tls' }
  let at = 4 + 2 + 32
  const need = (n: number): boolean => at + n <= hello.length
  if (!need(1)) return { state: 'done', serverName: undefined }
  at += 1 + (hello[at] ?? 0)
  if (!need(2)) return { state: 'done', serverName: undefined }
  at += 2 + hello.readUInt16BE(at)
  if (!need(1)) return { state: 'done', serverName: undefined }
  at += 1 + (hello[at] ?? 0)
  if (!need(2)) return { state: 'done', serverName: undefined }
  const end = Math.min(hello.length, at + 2 + hello.readUInt16BE(at))
  at += 2
  while (at + 4 <= end) {
    const type = hello.readUInt16BE(at)
    const len = hello.readUInt16BE(at + 2)
    at += 4
    if (type === 0 && at + 5 <= end) {
      // server_name_list: length, then entries of (type, length, name); type 0 is a host name.
      let p = at + 2
      const listEnd = Math.min(end, at + 2 + hello.readUInt16BE(at))
      while (p + 3 <= listEnd) {
        const nameType = hello[p]
        const nameLen = hello.readUInt16BE(p + 1)
        if (nameType === 0 && p + 3 + nameLen <= listEnd) return { state: 'done', serverName: hello.subarray(p + 3, p + 3 + nameLen).toString('ascii').toLowerCase() }
        p += 3 + nameLen
      }
      return { state: 'done', serverName: undefined }
    }
    at += len
  }
  return { state: 'done', serverName: undefined }
}
