import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AGENT_RULES, clusterRole, GATEWAY_RULES } from '../../../src/kube/rbac.ts'
import { GATEWAY_API_RESOURCES } from '../../../src/gateway/gateway-api-status.ts'
import type { PolicyRule } from '../../../src/kube/rbac.ts'
import { RESOURCES } from '../../../src/kube/types.ts'

function grants (rules: readonly PolicyRule[], group: string, resource: string, verb: string): boolean {
  return rules.some(r => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb))
}

test('agent rules: get/list/watch on exactly what the informers read', () => {
  const read = [RESOURCES.services, RESOURCES.endpoints, RESOURCES.nodes, RESOURCES.endpointSlices, RESOURCES.destinationRules]
  for (const r of read) for (const verb of ['get', 'list', 'watch']) assert.ok(grants(AGENT_RULES, r.group, r.resource, verb), `${verb} ${r.resource}`)
  const all = AGENT_RULES.flatMap(r => r.resources)
  assert.equal(all.length, read.length)
  for (const r of AGENT_RULES) {
    assert.deepEqual(r.verbs, ['get', 'list', 'watch'])
    assert.ok(!r.resources.includes('*') && !r.apiGroups.includes('*'))
  }
  assert.ok(!grants(AGENT_RULES, '', 'secrets', 'get'))
  assert.ok(!grants(AGENT_RULES, '', 'pods', 'list'))
  assert.ok(!grants(AGENT_RULES, 'networking.istio.io', 'virtualservices', 'list'))
})

test('gateway rules: what the gateway watches, secrets included, and no nodes', () => {
  for (const r of [RESOURCES.services, RESOURCES.endpoints, RESOURCES.endpointSlices, RESOURCES.secrets, RESOURCES.pods, RESOURCES.namespaces, RESOURCES.destinationRules, RESOURCES.gateways, RESOURCES.virtualServices]) {
    for (const verb of ['get', 'list', 'watch']) assert.ok(grants(GATEWAY_RULES, r.group, r.resource, verb), `${r.resource} ${verb}`)
  }
  for (const r of Object.values(GATEWAY_API_RESOURCES)) {
    for (const verb of ['get', 'list', 'watch']) assert.ok(grants(GATEWAY_RULES, r.group, r.resource, verb), `${r.resource} ${verb}`)
    assert.equal(grants(GATEWAY_RULES, r.group, `${r.resource}/status`, 'patch'), r.kind !== 'ReferenceGrant', `${r.resource}/status patch`)
    assert.ok(!grants(GATEWAY_RULES, r.group, r.resource, 'patch'), `${r.resource}: the spec is the user's`)
  }
  assert.ok(!grants(GATEWAY_RULES, '', 'nodes', 'get'))
  assert.ok(!grants(GATEWAY_RULES, '', 'secrets', 'update'))
})

test('the rules are frozen; clusterRole() hands out copies', () => {
  assert.ok(Object.isFrozen(AGENT_RULES) && Object.isFrozen(AGENT_RULES[0]) && Object.isFrozen(AGENT_RULES[0]?.resources))
  const role = clusterRole('edgemesh-agent', AGENT_RULES, { 'k8s-app': 'kubeedge' })
  assert.equal(role.kind, 'ClusterRole')
  assert.equal(role.apiVersion, 'rbac.authorization.k8s.io/v1')
  assert.deepEqual(role.metadata, { name: 'edgemesh-agent', labels: { 'k8s-app': 'kubeedge' } })
  role.rules[0]?.verbs.push('delete')
  assert.deepEqual(AGENT_RULES[0]?.verbs, ['get', 'list', 'watch'])
  assert.deepEqual(clusterRole('x', GATEWAY_RULES).metadata, { name: 'x' })
})
