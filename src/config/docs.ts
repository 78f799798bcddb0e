import type { TSchema } from '@sinclair/typebox'
import { NO_EFFECT, SCHEMAS } from './schema.ts'
import type { ConfigKind } from './schema.ts'
import { describeExpected } from './validate.ts'
import { schemaProperties } from './util.ts'
import { MAX_FILE_BYTES, MAX_YAML_TOKENS, MAX_YAML_VALUES } from './yaml.ts'

interface Row { path: string, type: string, def: string, description: string }

function rows (schema: TSchema, path: string, out: Row[]): void {
  const props = schemaProperties(schema)
  if (props !== undefined) {
    for (const [k, s] of Object.entries(props)) rows(s, path === '' ? k : `${path}.${k}`, out)
    return
  }
  if (schema.type === 'array' && schemaProperties(schema.items as TSchema) !== undefined) {
    out.push({ path, type: 'list of mappings', def: '`[]`', description: schema.description ?? '' })
    rows(schema.items as TSchema, `${path}[]`, out)
    return
  }
  const def = schema['x-default-doc'] as string | undefined ?? (schema.default === undefined ? '(required)' : '`' + JSON.stringify(schema.default) + '`')
  out.push({ path, type: describeExpected(schema), def, description: schema.description ?? '' })
}

const TITLES: Record<ConfigKind, string> = { agent: 'edgemesh-agent.yaml', gateway: 'edgemesh-gateway.yaml' }

/** docs/config.md, generated from the schema so it cannot drift. */
export function renderConfigDocs (): string {
  let md = `# Configuration reference

Generated from \`src/config/schema.ts\` by \`npm run gen\`; do not edit by hand.

Files are YAML, read like upstream EdgeMesh reads them: values are deep-merged over
the defaults below (mappings merge, lists replace), keys match case-insensitively and an
empty value means "use the default". Unknown keys are ignored with a warning naming the
key. An invalid value stops the program with exit code 2 and a message naming the key,
what was expected and what was given, before anything on the host is touched.
So does a file that is larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB, has more than ${MAX_YAML_TOKENS} YAML tokens,
repeats a key (case-insensitively) or whose aliases expand to more than ${MAX_YAML_VALUES} values.
Keys marked (EdgeMesh-TS) are additions; upstream files load unchanged.
Keys described as "${NO_EFFECT}" are validated,
so upstream files load, but nothing acts on them.

Runtime facts are not configuration: \`NODE_NAME\` and \`NAMESPACE\` come from the
environment, and the running mode is detected (\`KUBERNETES_PORT\` set → CloudMode,
otherwise EdgeMode; \`kubeAPIConfig.master\` or \`kubeConfig\` → ManualMode).
`
  for (const kind of ['agent', 'gateway'] as const) {
    const out: Row[] = []
    rows(SCHEMAS[kind], '', out)
    md += `\n## ${TITLES[kind]}\n\n| key | type | default | description |\n|---|---|---|---|\n`
    md += out.map(r => `| \`${r.path}\` | ${r.type.replace(/\|/g, '\\|')} | ${r.def.replace(/\|/g, '\\|')} | ${r.description.replace(/\|/g, '\\|')} |`).join('\n') + '\n'
  }
  return md
}
