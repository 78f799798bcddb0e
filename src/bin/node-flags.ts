/**
 * Node and V8 flags for the agent on small edge nodes.
 *
 * - A 1 MB young generation and a size-optimised heap cut RSS by a third at
 *   10k services (bench/servicemap).
 * - While the agent starts, functions tier up to Maglev and TurboFan only
 *   after ten times V8's default invocation counts. Its start runs config
 *   parsing, module loading (the loader's path handling) and handshakes once,
 *   and V8 compiled those with both compilers; the compilers' own code pages
 *   and their output then stayed resident: about 5 MB of an idle agent's RSS
 *   (bench/footprint). Once the agent runs, the entry point sets V8's
 *   defaults back (TIER_UP_AFTER_START): kept for good, the higher counts left bulk
 *   copies unoptimised for tens of seconds, at 10-15 % more CPU per GB
 *   (bench/tunnel).
 *
 * V8 sizes the young generation when the process starts, so the flags go on
 * the command line: the image's launcher passes them all, and so do the
 * benches. The entry point sets them at runtime when they were not given
 * (the young generation's size does not take effect then).
 */
export const AGENT_NODE_FLAGS: readonly string[] = [
  '--max-semi-space-size=1', '--optimize-for-size',
  '--invocation-count-for-maglev=4000', '--invocation-count-for-turbofan=30000'
]

/** V8's own tier-up counts (V8 13.6, Node 24), set again once the agent runs; test/unit/bin checks them against `node --v8-options`. */
export const TIER_UP_AFTER_START: readonly string[] = ['--invocation-count-for-maglev=400', '--invocation-count-for-turbofan=3000']

/**
 * The tier-up flags to set once the agent runs: V8's defaults for the counts
 * this process started with at our values (command line, NODE_OPTIONS or the
 * entry point), none for a count the operator set to a value of their own.
 */
export function tierUpAfterStart (given: string): string[] {
  return TIER_UP_AFTER_START.filter(flag => {
    const name = flag.split('=')[0] as string
    const ours = AGENT_NODE_FLAGS.find(f => f.startsWith(`${name}=`))
    const set = new RegExp(`${name}=(\\d+)`).exec(given)?.[0]
    return ours !== undefined && (set === undefined || set === ours)
  })
}

/**
 * The gateway's: a 16 MB young generation. With the agent's 1 MB one, each
 * HTTP request's garbage reached the old generation and full collections
 * stalled the event loop for 10–23 ms, so the p99 at 1.8k requests/s was
 * 60 ms against 3 ms for a bare Node proxy; with 16 MB, level with it, for
 * about 40 MB more RSS under load (docs/benchmarks.md, gateway). The gateway
 * runs on a node the operator picks, under upstream's 256 Mi limit.
 */
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16']

/** The Node flags of a command: the gateway's for `gateway`, the agent's for the rest. */
export function nodeFlagsFor (command: string | undefined): readonly string[] {
  return command === 'gateway' ? GATEWAY_NODE_FLAGS : AGENT_NODE_FLAGS
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
