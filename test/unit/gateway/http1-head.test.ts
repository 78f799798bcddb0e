import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ChunkedEnd, MAX_HEAD_BYTES, parseRequestHead, parseResponseHead } from '../../../src/gateway/http1-head.ts'

const req = (text: string): ReturnType<typeof parseRequestHead> => parseRequestHead(Buffer.from(text, 'latin1'))

test('a plain request head is read: method, target, headers in lower case and trimmed, body length, close', () => {
  const head = req('POST /a/b?c=1 HTTP/1.1\r\nHost: x.example\r\nContent-Length: 12\r\nX-Thing:  two words \t\r\nConnection: close\r\n\r\nbody')
  assert.notEqual(typeof head, 'string')
  const h = head as Exclude<typeof head, string>
  assert.equal(h.method, 'POST')
  assert.equal(h.target, '/a/b?c=1')
  assert.deepEqual(h.headers, { host: 'x.example', 'content-length': '12', 'x-thing': 'two words', connection: 'close' })
  assert.equal(h.contentLength, 12)
  assert.equal(h.close, true)
  assert.equal(h.size, Buffer.byteLength('POST /a/b?c=1 HTTP/1.1\r\nHost: x.example\r\nContent-Length: 12\r\nX-Thing:  two words \t\r\nConnection: close\r\n\r\n'))
  const get = req('GET / HTTP/1.1\r\nhost: a\r\n\r\n') as Exclude<typeof head, string>
  assert.equal(get.contentLength, 0)
  assert.equal(get.close, false)
})

test('a head cut short is incomplete; garbage, or a head past 16 KiB, goes to Node\'s parser at once', () => {
  assert.equal(req('GET /x HTTP/1.1\r\nHost: a\r\n'), 'incomplete')
  assert.equal(req('GE'), 'incomplete')
  assert.equal(req('GET /x HT'), 'incomplete')
  assert.equal(req('\x16\x03\x01\x02\x00'), 'other')
  assert.equal(req('GET x'), 'other')
  assert.equal(req('GET /x HTTP/2'), 'other')
  assert.equal(req('GET /x HTTP/1.1\r\nX: \x01'), 'other')
  assert.equal(parseRequestHead(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nX-Big: '), Buffer.alloc(MAX_HEAD_BYTES, 0x61)])), 'other')
  assert.equal(parseRequestHead(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nX-Big: '), Buffer.alloc(MAX_HEAD_BYTES, 0x61), Buffer.from('\r\n\r\n')])), 'other')
})

test('whatever could be read two ways, or that the fast path does not serve, is left to Node\'s parser', () => {
  const others = [
    'GET / HTTP/1.0\r\nHost: a\r\n\r\n',
    'GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n',
    'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n',
    'GET / HTTP/1.1\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nX: folded\r\n continued\r\n\r\n',
    'GET / HTTP/1.1\nHost: a\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n',
    'GET / HTTP/1.1\r\nHost : a\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: caf\xe9\r\n\r\n',
    'GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\n',
    'PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n'
  ]
  for (const text of others) assert.equal(req(text), 'other', JSON.stringify(text))
})

const res = (text: string, method = 'GET'): ReturnType<typeof parseResponseHead> => parseResponseHead(Buffer.from(text, 'latin1'), method)

test('response framing: length, chunked, to the close; heads without a body; keep-alive by version and Connection', () => {
  const ok = res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello') as Exclude<ReturnType<typeof res>, string>
  assert.deepEqual([ok.status, ok.reason, ok.framing, ok.keepAlive], [200, 'OK', { kind: 'length', length: 5 }, true])
  assert.deepEqual(ok.headers['set-cookie'], ['a=1', 'b=2'])
  const status = (text: string): unknown => { const r = res(text); return typeof r === 'string' ? r : [r.status, r.reason] }
  assert.deepEqual(status('HTTP/1.1 404\r\n\r\n'), [404, ''], 'the reason phrase may be left out')
  assert.deepEqual(status('HTTP/1.1 503 \r\n\r\n'), [503, ''])
  assert.deepEqual(status('HTTP/1.0 418 I\'m a teapot\r\n\r\n'), [418, 'I\'m a teapot'])
  assert.equal(status('HTTP/1.1 2000 OK\r\n\r\n'), 'invalid')
  assert.equal(status('HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n'), 'invalid', 'a bare LF ends no status line')
  const framing = (text: string, method?: string): unknown => { const r = res(text, method); return typeof r === 'string' ? r : [r.framing, r.keepAlive] }
  assert.deepEqual(framing('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), [{ kind: 'chunked' }, true])
  assert.deepEqual(framing('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'), [{ kind: 'chunked' }, true])
  // Both: chunked wins and the connection is not used again (RFC 9112 §6.3).
  assert.deepEqual(framing('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'), [{ kind: 'chunked' }, false])
  assert.deepEqual(framing('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'), [{ kind: 'close' }, false])
  assert.deepEqual(framing('HTTP/1.1 200 OK\r\n\r\n'), [{ kind: 'close' }, false])
  assert.deepEqual(framing('HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\n'), [{ kind: 'length', length: 7 }, false])
  assert.deepEqual(framing('HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\n'), [{ kind: 'length', length: 7 }, false])
  assert.deepEqual(framing('HTTP/1.0 200 OK\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\n'), [{ kind: 'length', length: 7 }, true])
  assert.deepEqual(framing('HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n'), [{ kind: 'length', length: 7 }, true])
  for (const head of ['HTTP/1.1 204 No Content\r\n\r\n', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n']) {
    assert.deepEqual(framing(head), [{ kind: 'length', length: 0 }, true], head)
  }
  assert.deepEqual(framing('HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n', 'HEAD'), [{ kind: 'length', length: 0 }, true])
  assert.equal(res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n'), 'incomplete')
})

test('a response that cannot be framed safely is invalid', () => {
  for (const text of [
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n',
    'HTTP/2 200\r\n\r\n',
    'HTTP/1.1 20 OK\r\n\r\n',
    'ICY 200 OK\r\n\r\n',
    'HTTP/1.1 200 OK\r\nX: folded\r\n more\r\n\r\n',
    'HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n'
  ]) assert.equal(res(text), 'invalid', JSON.stringify(text))
  assert.equal(parseResponseHead(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nX: '), Buffer.alloc(MAX_HEAD_BYTES, 0x61)]), 'GET'), 'invalid')
})

test('a chunked body is followed to its end whatever the pieces it arrives in; what follows is not part of it', () => {
  const bodyText = '5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n'
  const after = 'HTTP/1.1 200 OK\r\n'
  const whole = Buffer.from(bodyText + after)
  for (const size of [1, 2, 3, 7, 1000]) {
    const end = new ChunkedEnd()
    let used = 0
    for (let i = 0; i < whole.length && !end.done; i += size) used += end.feed(whole.subarray(i, i + size))
    assert.equal(end.done, true, `pieces of ${size}`)
    assert.equal(used, Buffer.byteLength(bodyText), `pieces of ${size}`)
  }
  const plain = new ChunkedEnd()
  assert.equal(plain.feed(Buffer.from('0\r\n\r\n')), 5)
  assert.equal(plain.done, true)
})

test('a malformed chunked body throws', () => {
  for (const text of ['z\r\n', '5\r\nhelloX\r\n', '5\nhello', `${'f'.repeat(13)}\r\n`, `5;${'x'.repeat(5000)}`]) {
    assert.throws(() => new ChunkedEnd().feed(Buffer.from(text)), Error, JSON.stringify(text.slice(0, 20)))
  }
})
