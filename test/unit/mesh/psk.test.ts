import { test } from 'node:test'
import assert from 'node:assert/strict'
import { derivePnetKey } from '../../../src/mesh/psk.ts'

// Vectors from upstream EdgeMesh's GeneratePSKReader + pnet.DecodeV1PSK.
test('PSK derivation matches upstream vectors', () => {
  const cases: Array<[string, string]> = [
    ['JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=', 'ef4d5fdb6d1b75ad1b7bc79a7b7f5e69ed77ddfdf8ddee3579de5bf35d1b7bdd'],
    ['JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=\n', 'edc6dd6df6f6d9e6da774e9f7bbf5e7baf7cdfc73971eeb5efa779d396b6e1af'],
    ['edgemesh e2e test', '69bdbcf77e376b9efdf37e78e7ce1d7fdd3ae397dedfbe3bf75e7a71c778e77f']
  ]
  for (const [file, key] of cases) assert.equal(derivePnetKey(Buffer.from(file)).toString('hex'), key, JSON.stringify(file))
})
