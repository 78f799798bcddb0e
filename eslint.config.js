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
      '@typescript-eslint/no-misused-promises': 'error',
      // Each loads an ICU service the agent otherwise never maps (localeCompare: 3 MB of RSS).
      'no-restricted-syntax': ['error',
        { selector: "CallExpression[callee.property.name='localeCompare']", message: 'localeCompare loads ICU\'s collator (3 MB RSS): use byCodeUnits from src/order.ts.' },
        { selector: "MemberExpression[object.name='Intl']", message: 'Intl loads ICU data into the agent: format by hand.' }]
    }
  },
  {
    // Generators of docs run at build time, not in the agent.
    files: ['src/docs/**'],
    rules: { 'no-restricted-syntax': 'off' }
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
