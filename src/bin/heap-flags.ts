/**
 * V8 heap flags for the agent on small edge nodes: a 1 MB young generation
 * and a size-optimised heap, which cut RSS by a third at 10k services
 * (bench/servicemap). V8 sizes the young generation when the process starts,
 * so that flag works only on the command line: the image's launcher passes
 * them all, and so do the benches. The entry point sets them at runtime when
 * they were not given (only --optimize-for-size still takes effect then).
 */
export const HEAP_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--optimize-for-size']
