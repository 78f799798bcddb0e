// IPv4 helpers: numbers both ways, and CIDR membership at every prefix length.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cidrsOverlap, cidrWithin, inCidr, ipv4ToNumber, numberToIpv4, parseIpv4Endpoint } from '../../../src/net/ipv4.ts'

test('addresses and numbers convert both ways; anything else is undefined', () => {
  for (const ip of ['0.0.0.0', '10.244.64.1', '255.255.255.255']) assert.equal(numberToIpv4(ipv4ToNumber(ip) as number), ip)
  for (const bad of ['10.0.0', '10.0.0.256', '::1', '', '1..2.3']) assert.equal(ipv4ToNumber(bad), undefined, bad)
})

test('inCidr: the block and nothing beside it, /0 to /32; never for IPv6 or a malformed CIDR', () => {
  assert.ok(inCidr('10.244.64.1', '10.244.64.0/24'))
  assert.ok(inCidr('10.244.64.255', '10.244.64.0/24'))
  assert.ok(!inCidr('10.244.65.0', '10.244.64.0/24'))
  assert.ok(inCidr('10.244.127.9', '10.244.64.0/18'))
  assert.ok(!inCidr('10.244.128.0', '10.244.64.0/18'))
  assert.ok(inCidr('203.0.113.7', '0.0.0.0/0'))
  assert.ok(inCidr('192.168.1.11', '192.168.1.11/32'))
  assert.ok(!inCidr('192.168.1.12', '192.168.1.11/32'))
  assert.ok(!inCidr('fe80::1', '10.0.0.0/8'))
  assert.ok(!inCidr('10.0.0.1', '10.0.0.0/33'))
  assert.ok(!inCidr('10.0.0.1', '10.0.0.0'))
})

test('CIDRs overlap when one holds an address of the other, whatever their lengths', () => {
  assert.equal(cidrsOverlap('10.244.64.0/24', '10.244.64.0/24'), true)
  assert.equal(cidrsOverlap('10.244.64.0/24', '10.244.64.128/25'), true)
  assert.equal(cidrsOverlap('10.244.0.0/16', '10.244.200.0/24'), true)
  assert.equal(cidrsOverlap('10.244.64.0/24', '10.244.65.0/24'), false)
  assert.equal(cidrsOverlap('10.244.64.0/23', '10.244.65.0/24'), true)
  assert.equal(cidrsOverlap('10.244.64.0/24', 'not a cidr'), false)
  assert.equal(cidrWithin('10.244.1.0/24', '10.244.0.0/18'), true)
  assert.equal(cidrWithin('10.244.64.0/24', '10.244.0.0/18'), false)
  assert.equal(cidrWithin('10.244.0.0/16', '10.244.0.0/18'), false, 'larger than the range')
  assert.equal(cidrWithin('10.244.0.0/18', '10.244.0.0/18'), true)
})

test('parseIpv4Endpoint: ip:port, nothing else', () => {
  assert.deepEqual(parseIpv4Endpoint('198.18.0.7:40253'), { host: '198.18.0.7', port: 40253 })
  assert.deepEqual(parseIpv4Endpoint('10.0.0.1:1'), { host: '10.0.0.1', port: 1 })
  for (const bad of ['10.0.0.1', '10.0.0.1:', '10.0.0.1:0', '10.0.0.1:65536', '10.0.0.1:80x', '10.0.0.256:80', '10.0.0:80', 'host:80', ':80', '10.0.0.1:+80', '10.0.0.1: 80', '[::1]:80', '10.0.0.1:123456']) {
    assert.equal(parseIpv4Endpoint(bad), undefined, bad)
  }
})
