import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['node_modules/**', 'dist/**', '.tools/**', 'docs/**'] }),
  {
    rules: {
      'no-console': 'error'
    }
  },
  {
    // Type-aware rules for the product: a promise nobody awaits or catches is a silent failure.
    files: ['src/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error'
    }
  },
  {
    // TypeBox idiom: a schema constant and its Static type share one name.
    files: ['src/config/schema.ts'],
    rules: { '@typescript-eslint/no-redeclare': 'off' }
  },
  {
    // Entry points, scripts, benches and the lab CLI talk to a terminal.
    files: ['src/bin/**', 'scripts/**', 'bench/**', 'test/lab/cli.ts', 'src/cli/**'],
    rules: { 'no-console': 'off' }
  }
]
