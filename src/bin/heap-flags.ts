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
 * The gateway's: a 16 MB young generation. With the agent's 1 MB one, each
 * HTTP request's garbage reached the old generation and full collections
 * stalled the event loop for 10–23 ms, so the p99 at 1.8k requests/s was
 * 60 ms against 3 ms for a bare Node proxy; with 16 MB, level with it, for
 * about 40 MB more RSS under load (docs/benchmarks.md, gateway). The gateway
 * runs on a node the operator picks, under upstream's 256 Mi limit.
 */
export const GATEWAY_HEAP_FLAGS: readonly string[] = ['--max-semi-space-size=16']

/** The heap flags of a command: the gateway's for `gateway`, the agent's for the rest. */
export function heapFlagsFor (command: string | undefined): readonly string[] {
  return command === 'gateway' ? GATEWAY_HEAP_FLAGS : HEAP_FLAGS
}

/**
 * glibc's malloc keeps up to eight arenas per core, one for each thread that
 * allocates (libuv's pool, V8's workers), each holding freed memory of its
 * own. Two arenas cut the agent's idle RSS by about 2 MB (bench/footprint);
 * its threads other than the main one rarely allocate, so they seldom wait
 * on each other. Read by glibc when the process starts: the image's launcher
 * exports it unless the operator set it, and the benches set it.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' }
