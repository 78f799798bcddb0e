import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

export interface ErrorDoc { code: string, name: string, file: string, description: string }

/**
 * Finds every EdgeMeshError subclass in src/ with its stable code and the doc
 * comment above it. docs/errors.md is generated from this list, so a code
 * cannot exist without being documented.
 */
export function collectErrors (srcDir: string): ErrorDoc[] {
  const out: ErrorDoc[] = []
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) { walk(path); continue }
      if (!name.endsWith('.ts')) continue
      const text = readFileSync(path, 'utf8')
      const re = /(\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*)?export class (\w+) extends EdgeMeshError \{[\s\S]*?readonly code = '(EM_ERR_[A-Z0-9_]+)'/g
      for (const m of text.matchAll(re)) {
        const description = (m[2] ?? '').split('\n').map(l => l.replace(/^\s*\*\s?/, '').trim()).filter(Boolean).join(' ')
        out.push({ code: m[4] as string, name: m[3] as string, file: relative(join(srcDir, '..'), path), description })
      }
    }
  }
  walk(srcDir)
  return out.sort((a, b) => a.code.localeCompare(b.code))
}

export function renderErrorDocs (errors: ErrorDoc[]): string {
  return `# Error codes

Generated from the error classes in \`src/\` by \`npm run gen\`; do not edit by hand.
Every error the agent raises on purpose has a stable \`code\`; logs carry it, and scripts
may match on it (never on message text).

| code | class | meaning | defined in |
|---|---|---|---|
${errors.map(e => `| \`${e.code}\` | ${e.name} | ${e.description.replace(/\|/g, '\\|') || '—'} | \`${e.file}\` |`).join('\n')}
`
}
