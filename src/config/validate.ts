import { existsSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import { isIP } from 'node:net'
import type { TSchema } from '@sinclair/typebox'
import { MAX_IFNAME } from './schema.ts'
import type { AgentConfig, CheckName } from './schema.ts'
import type { ConfigIssue } from './errors.ts'
import { isRecord, schemaProperties } from './util.ts'
import { relayAddress } from './relays.ts'

/** "one of "tcp", "ws"", "an integer from 1 to 65535", ... for messages and docs. */
export function describeExpected (schema: TSchema): string {
  if (Array.isArray(schema.anyOf) && schema.anyOf.every((s: TSchema) => s.const !== undefined)) {
    return 'one of ' + schema.anyOf.map((s: TSchema) => JSON.stringify(s.const)).join(', ')
  }
  switch (schema.type) {
    case 'integer': return `an integer from ${String(schema.minimum)} to ${String(schema.maximum)}`
    case 'number': return `a number ≥ ${String(schema.minimum)}`
    case 'boolean': return 'true or false'
    case 'string': return (schema.minLength !== undefined ? 'a non-empty string' : 'a string') + (schema.maxLength !== undefined ? ` of at most ${String(schema.maxLength)} characters` : '')
    case 'array': return schema.maxItems !== undefined ? `a list of at most ${String(schema.maxItems)} items` : 'a list'
    case 'object': return 'a mapping'
    default: return 'a valid value'
  }
}

const CHECKS: Record<CheckName, { expected: string, test: (v: string) => boolean }> = {
  absolutePath: { expected: 'an absolute path', test: v => v === '' || isAbsolute(v) },
  // The kernel's dev_valid_name(); longer names fail only later, in `ip link`.
  ifName: { expected: `an interface name of 1 to ${MAX_IFNAME} bytes without "/", ":" or spaces`, test: v => Buffer.byteLength(v) <= MAX_IFNAME && /^[^\s/:]+$/.test(v) && v !== '.' && v !== '..' },
  ipv4: { expected: 'an IPv4 address', test: v => isIP(v) === 4 },
  ip: { expected: 'an IP address', test: v => isIP(v) !== 0 },
  hostOrIp: { expected: 'an IP address or host name', test: v => isIP(v) !== 0 || isHostName(v) },
  relayAddress: { expected: 'an IP address or host name, optionally with :port', test: v => { const { host, port } = relayAddress(v, 1); return port >= 1 && port <= 65535 && (isIP(host) !== 0 || isHostName(host)) } },
  hostPort: { expected: '`ip` or `ip:port`', test: isHostPort },
  cidr: { expected: 'a CIDR such as 10.244.0.0/16', test: isCidr },
  nicList: { expected: 'comma-separated interface names or `*`', test: v => v.split(',').every(s => s.trim() === '*' || s.trim() === '' || /^[\w.:@-]{1,15}$/.test(s.trim())) },
  ipOrCidrList: { expected: 'comma-separated IPs/CIDRs or `*`', test: v => v.split(',').every(s => ['', '*'].includes(s.trim()) || isIP(s.trim()) !== 0 || isCidr(s.trim())) }
}

/** Checks that JSON Schema cannot express (x-check, x-item-check) plus file existence. */
export function checkValue (schema: TSchema, value: unknown, path: string, checkFiles: boolean): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const props = schemaProperties(schema)
  if (props !== undefined && isRecord(value)) {
    for (const [k, s] of Object.entries(props)) {
      issues.push(...checkValue(s, value[k], path === '' ? k : `${path}.${k}`, checkFiles))
    }
    return issues
  }
  if (schema.type === 'array' && Array.isArray(value)) {
    const item = schema['x-item-check'] as CheckName | undefined
    value.forEach((v, i) => {
      const p = `${path}[${i}]`
      if (item !== undefined && typeof v === 'string' && !CHECKS[item].test(v.trim())) {
        issues.push({ path: p, expected: CHECKS[item].expected, given: JSON.stringify(v) })
      }
      issues.push(...checkValue(schema.items as TSchema, v, p, checkFiles))
    })
    return issues
  }
  const check = schema['x-check'] as CheckName | undefined
  if (check !== undefined && typeof value === 'string' && !CHECKS[check].test(value)) {
    issues.push({ path, expected: CHECKS[check].expected, given: JSON.stringify(value) })
  } else if (checkFiles && path === 'kubeAPIConfig.kubeConfig' && typeof value === 'string' && value !== '' && !existsSync(value)) {
    issues.push({ path, expected: 'an existing kubeconfig file', given: `${JSON.stringify(value)} (not found)` })
  }
  return issues
}

/** Rules that tie keys together (agent only), after each key is valid on its own. */
export function checkAgent (config: AgentConfig): ConfigIssue[] {
  const ip = config.commonConfig.bridgeDeviceIP
  const proxy = config.modules.edgeProxy
  const path = 'commonConfig.bridgeDeviceIP'
  const given = JSON.stringify(ip)
  const first = Number(ip.split('.')[0])
  // DNS listens and ClusterIPs are DNATed here: an unspecified, multicast or broadcast address cannot serve.
  if (first === 0 || first >= 224) {
    return [{ path, expected: 'a unicast IPv4 address (not 0.0.0.0/8, multicast or broadcast)', given }]
  }
  // With loopback no bridge device is made (src/app/agent.ts), yet interception would DNAT ClusterIPs to it.
  if (first === 127 && proxy.enable && proxy.interception !== 'none') {
    return [{ path, expected: `a non-loopback address while modules.edgeProxy.interception is "${proxy.interception}" (loopback needs interception: none)`, given }]
  }
  return []
}

function isHostName (v: string): boolean {
  return v.length <= 253 && /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/.test(v)
}

function isHostPort (v: string): boolean {
  if (isIP(v) !== 0) return true
  const m = /^(.+):(\d{1,5})$/.exec(v)
  if (m === null) return false
  const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1')
  const port = Number(m[2])
  return isIP(host) !== 0 && port >= 1 && port <= 65535
}

function isCidr (v: string): boolean {
  const [ip, bits, extra] = v.split('/')
  if (ip === undefined || bits === undefined || extra !== undefined || !/^\d{1,3}$/.test(bits)) return false
  const family = isIP(ip)
  return family !== 0 && Number(bits) <= (family === 4 ? 32 : 128)
}
