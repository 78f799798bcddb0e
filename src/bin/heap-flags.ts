/**
 * V8 heap flags for the agent on small edge nodes: a 1 MB young generation
 * and a size-optimised heap, which cut RSS by a third at 10k services
 * (bench/servicemap). V8 sizes the young generation when the process starts,
 * so that flag works only on the command line: the image's launcher passes
 * them all, and so do the benches. The entry point sets them at runtime when
 * they were not given (only --optimize-for-size still takes effect then).
 */
export const HEAP_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--optimize-for-size']

/**
 * glibc's malloc keeps up to eight arenas per core, one for each thread that
 * allocates (libuv's pool, V8's workers), each holding freed memory of its
 * own. Two arenas cut the agent's idle RSS by about 2 MB (bench/footprint);
 * its threads other than the main one rarely allocate, so they seldom wait
 * on each other. Read by glibc when the process starts: the image's launcher
 * exports it unless the operator set it, and the benches set it.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' }
