import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['node_modules/**', 'dist/**', '.tools/**', 'docs/**'] }),
  {
    rules: {
      'no-console': 'error'
    }
  },
  {
    // Entry points, scripts, benches and the lab CLI talk to a terminal.
    files: ['src/bin/**', 'scripts/**', 'bench/**', 'src/lab/cli.ts', 'src/cli/**'],
    rules: { 'no-console': 'off' }
  }
]
