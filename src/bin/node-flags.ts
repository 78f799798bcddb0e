/**
 * Node and V8 flags for the agent on small edge nodes.
 *
 * - A 1 MB young generation and a size-optimised heap cut RSS by a third at
 *   10k services (bench/servicemap).
 * - No Maglev, and TurboFan and Sparkplug only once the agent works
 *   (turbofan.ts turns them on for good). An idle agent's periodic work
 *   (timers, keepalives, relay redials) was optimised within about 20 s, and
 *   the compilers' code pages in the `node` binary and their output then
 *   stayed resident: about 8 MB of an idle agent's RSS (bench/footprint).
 *   Sparkplug's baseline code for what the start ran (config parsing, module
 *   loading, libp2p's setup) stayed too: about 2 MB. Functions that ran
 *   meanwhile tier up as usual afterwards (Sparkplug, then TurboFan, as V8
 *   tiered before Maglev).
 *   - Maglev stays off: V8 compiles on the main thread for a Maglev turned on
 *     after the start, and with it turned on that way, opening a connection
 *     under contention took about 1.5 times as long (bench/tunnel). Code Maglev
 *     compiles while TurboFan is off never reaches TurboFan.
 *   - Kept off for good, TurboFan's absence (`--max-opt=2`) made opening a
 *     connection under contention about a third slower (bench/tunnel).
 *
 * V8 sizes the young generation when the process starts, so the flags go on
 * the command line: the image's launcher passes them all, and so do the
 * benches. The entry point sets them at runtime when they were not given
 * (the young generation's size does not take effect then).
 */
export const AGENT_NODE_FLAGS: readonly string[] = [
  '--max-semi-space-size=1', '--optimize-for-size', '--no-maglev', '--no-turbofan', '--no-sparkplug'
]

/** The flags that turn TurboFan and Sparkplug on, for a command that starts without them. */
export function compilersToTurnOn (command: string | undefined): string[] {
  const flags = nodeFlagsFor(command)
  return ['--turbofan', '--sparkplug'].filter(on => flags.includes(on.replace('--', '--no-')))
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
