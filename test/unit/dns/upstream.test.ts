// Upstream selection: resolv.conf parsing, configured servers, cluster DNS detection.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { detectClusterDns, parseHostPort, parseResolvConf } from '../../../src/dns/upstream.ts'
import { DnsConfigError } from '../../../src/dns/errors.ts'
import { service, snapshotOf } from './fixtures.ts'

describe('upstream servers', () => {
  test('resolv.conf: nameservers in order, comments and options ignored, duplicates dropped', () => {
    const text = '# host file\nsearch example.com\nnameserver 10.0.0.2 ; primary\nnameserver fe80::1%eth0\n  nameserver 10.0.0.2\noptions ndots:2\nnameserver not-an-ip\n;nameserver 9.9.9.9\n'
    assert.deepEqual(parseResolvConf(text).map(s => s.label), ['10.0.0.2:53', '[fe80::1]:53'])
    assert.deepEqual(parseResolvConf('nameserver 127.0.0.53\n', 5353).map(s => s.label), ['127.0.0.53:5353'])
  })

  test('upstreamServers entries: ip, ip:port, [ipv6]:port', () => {
    assert.deepEqual(parseHostPort('10.96.0.10'), { address: '10.96.0.10', port: 53, label: '10.96.0.10:53' })
    assert.deepEqual(parseHostPort(' 10.96.0.10:5353 '), { address: '10.96.0.10', port: 5353, label: '10.96.0.10:5353' })
    assert.deepEqual(parseHostPort('[fd00::a]:54'), { address: 'fd00::a', port: 54, label: '[fd00::a]:54' })
    assert.deepEqual(parseHostPort('fd00::a'), { address: 'fd00::a', port: 53, label: '[fd00::a]:53' })
    for (const bad of ['dns.example', '10.0.0.1:0', '10.0.0.1:70000', '']) assert.throws(() => parseHostPort(bad), DnsConfigError, bad)
  })

  test('cluster DNS autodetection: coredns, kube-dns, then k8s-app=kube-dns in kube-system; headless skipped', () => {
    const tcp53 = [{ name: 'dns', protocol: 'UDP' as const, port: 53 }, { name: 'dns-tcp', protocol: 'TCP' as const, port: 53 }]
    const snap = snapshotOf([
      service('kube-system', 'zz-dns', { clusterIPs: ['10.96.0.30'], labels: { 'k8s-app': 'kube-dns' }, ports: [{ name: 'x', protocol: 'TCP', port: 5353 }] }),
      service('kube-system', 'kube-dns', { clusterIPs: ['10.96.0.10'], ports: tcp53 }),
      service('kube-system', 'coredns', { clusterIPs: ['10.96.0.20', 'fd00::20'], ports: tcp53, labels: { 'k8s-app': 'kube-dns' } }),
      service('kube-system', 'headless-dns', { headless: true, labels: { 'k8s-app': 'kube-dns' } }),
      service('default', 'kube-dns', { clusterIPs: ['10.96.0.99'], labels: { 'k8s-app': 'kube-dns' } })
    ])
    assert.deepEqual(detectClusterDns(snap).map(s => s.label), ['10.96.0.20:53', '[fd00::20]:53', '10.96.0.10:53', '10.96.0.30:5353'])
    assert.deepEqual(detectClusterDns(new Map()), [])
  })
})
