/**
 * A libp2p stream as a Node Duplex, so proxied connections can `pipe()`.
 * Backpressure both ways: a full Node buffer pauses the stream; a full
 * stream write buffer holds the write callback until its 'drain' event
 * (not `onDrain()`, which stopped applying backpressure after the first
 * drain in @libp2p/utils 7.4). Half-close maps to the stream's close-write.
 */
import { Duplex } from 'node:stream'
import type { Stream } from '@libp2p/interface'

/** Enough for a yamux window and then some; a stream whose reader stalls is aborted beyond it. */
const MAX_READ_BUFFER = 4 * 1024 * 1024
const READ_HIGH_WATER_MARK = 1024 * 1024
const WRITE_HIGH_WATER_MARK = 256 * 1024

/** `onData` is told each time data arrives (the tunnel notes the peer is alive). */
export function streamToDuplex (stream: Stream, initial?: Uint8Array, onData?: () => void): Duplex {
  stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, MAX_READ_BUFFER)
  let ended = false
  const duplex = new Duplex({
    allowHalfOpen: true,
    // A Yamux frame is up to 256 KiB: with Node's 16 KiB default every frame
    // would pause the stream, and a paused Yamux stream sends no window updates.
    readableHighWaterMark: READ_HIGH_WATER_MARK,
    writableHighWaterMark: WRITE_HIGH_WATER_MARK,
    read () { stream.resume() },
    write (chunk: Buffer, _enc, cb) {
      try {
        if (stream.send(chunk)) { cb(); return }
      } catch (err) { cb(err as Error); return }
      const onDrain = (): void => { stream.removeEventListener('close', onClose); cb() }
      const onClose = (): void => { stream.removeEventListener('drain', onDrain); cb(new Error('stream closed while writing')) }
      stream.addEventListener('drain', onDrain, { once: true })
      stream.addEventListener('close', onClose, { once: true })
    },
    final (cb) {
      // close() rejects with a raw Event when the stream dies meanwhile: never let that escape.
      stream.close().then(() => cb(), () => cb())
    },
    destroy (err, cb) {
      if (stream.status === 'open' || stream.status === 'closing') stream.abort(err ?? new Error('proxied connection closed'))
      cb(err)
    }
  })
  const end = (): void => { if (!ended) { ended = true; duplex.push(null) } }
  if (initial !== undefined && initial.length > 0) duplex.push(Buffer.from(initial))
  stream.addEventListener('message', (e) => {
    const data = e.data instanceof Uint8Array ? e.data : e.data.subarray()
    onData?.()
    if (!duplex.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) stream.pause()
  })
  stream.addEventListener('remoteCloseWrite', end)
  stream.addEventListener('close', (e) => {
    if (e.error !== undefined) duplex.destroy(e.error)
    else end()
  })
  return duplex
}
