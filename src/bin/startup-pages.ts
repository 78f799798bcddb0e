/**
 * Gives back, once the agent idles after its start, the pages of the `node`
 * binary and its libraries that only the start used.
 *
 * An idle agent with every module kept about 44 MB of file-backed pages
 * (the `node` binary's code and read-only data: V8's parser and compilers,
 * the startup snapshot, Node's own modules' source, OpenSSL's and ICU's
 * setup), of which it touched about 9 MB in 30 s of idling. Those pages are
 * clean: `madvise(MADV_PAGEOUT)` (Linux 5.4) unmaps them and frees them from
 * the page cache when no other process maps them, so the memory is free
 * for the node, not only out of this process's RSS. A page used again is
 * read back from the file on its next use, as after any reclaim; what the
 * idle agent uses came back within seconds (about 21 MB). Android compacts
 * idle apps the same way. Dirty private pages (relocations, the heap) are
 * never freed by it, so it is safe on any mapping.
 *
 * Once: the start's pages are the waste. An agent that works right away
 * waits until it idles; one that never idles keeps its pages.
 */
import { readFileSync } from 'node:fs'
import { watchCpuWindows } from './cpu-windows.ts'

const MADV_PAGEOUT = 21

export interface StartupPagesInit {
  /** Frees the pages (pageOutFileMappings in production). */
  release: () => void
  cpuUsage?: () => NodeJS.CpuUsage
  /** @default 1000 */
  everyMs?: number
  /** Windows to wait at least, from the call (the agent logged `running`). @default 10 */
  afterWindows?: number
  /** A window under this share of a core is idle. @default 0.05 */
  idleShare?: number
  /** Idle windows in a row that trigger it. @default 3 */
  idleWindows?: number
}

/**
 * Calls `release` once the agent has run `afterWindows` windows and the last
 * `idleWindows` of them were idle (an idle agent uses 0–5 % of a core, its
 * redials up to 9 % in one second). Returns what stops the watch.
 */
export function releaseStartupPagesWhenIdle (init: StartupPagesInit): () => void {
  const after = init.afterWindows ?? 10
  const idle = init.idleShare ?? 0.05
  const needed = init.idleWindows ?? 3
  let windows = 0
  let idleInARow = 0
  return watchCpuWindows({
    ...(init.cpuUsage !== undefined ? { cpuUsage: init.cpuUsage } : {}),
    ...(init.everyMs !== undefined ? { everyMs: init.everyMs } : {}),
    onWindow: share => {
      windows++
      idleInARow = share < idle ? idleInARow + 1 : 0
      if (windows < after || idleInARow < needed) return false
      init.release()
      return true
    }
  })
}

/** Address ranges of the private mappings of files in `/proc/<pid>/maps` text (no anonymous, heap, stack or vdso). */
export function privateFileMappings (maps: string): Array<{ start: bigint, length: number, path: string }> {
  const out: Array<{ start: bigint, length: number, path: string }> = []
  for (const line of maps.split('\n')) {
    // start-end perms offset dev inode path; "(deleted)" files are left alone.
    const m = /^([0-9a-f]+)-([0-9a-f]+) r..p [0-9a-f]+ \S+ [1-9]\d*\s+(\/\S+)$/.exec(line)
    if (m === null) continue
    const start = BigInt('0x' + (m[1] as string))
    out.push({ start, length: Number(BigInt('0x' + (m[2] as string)) - start), path: m[3] as string })
  }
  return out
}

export interface PageOutResult {
  /** Mappings advised, and those the kernel refused (EINVAL before Linux 5.4). */
  advised: number
  refused: number
  /** The process's file-backed resident MB before and right after. */
  fileMBBefore: number
  fileMBAfter: number
}

/**
 * `madvise(MADV_PAGEOUT)` on every private file mapping of this process,
 * through koffi (the FFI the edge CNI uses; shipped unbundled in the image).
 */
export async function pageOutFileMappings (): Promise<PageOutResult> {
  const fileMBBefore = fileBackedMB()
  const koffi = (await import('koffi')).default
  // The process's own symbols, libc's among them.
  const madvise = koffi.load(null as unknown as string).func('int madvise(uintptr_t addr, size_t length, int advice)') as (addr: bigint, length: number, advice: number) => number
  let advised = 0
  let refused = 0
  for (const { start, length } of privateFileMappings(readFileSync('/proc/self/maps', 'utf8'))) {
    if (madvise(start, length, MADV_PAGEOUT) === 0) advised++
    else refused++
  }
  return { advised, refused, fileMBBefore, fileMBAfter: fileBackedMB() }
}

/** Resident file-backed MB of this process (RSS minus its anonymous pages). */
export function fileBackedMB (): number {
  const rollup = readFileSync('/proc/self/smaps_rollup', 'utf8')
  const kB = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? NaN)
  return (kB('Rss') - kB('Anonymous')) / 1024
}
