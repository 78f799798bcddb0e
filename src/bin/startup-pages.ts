/**
 * Unmaps, once the agent idles after its start, the pages of the `node`
 * binary and its libraries that only the start used.
 *
 * An idle agent with every module kept about 44 MB of the binary mapped
 * (V8's parser and compilers, the startup snapshot, Node's own modules'
 * source, OpenSSL's and ICU's setup), of which it touched about 9 MB in 30 s
 * of idling. `madvise(MADV_DONTNEED)` on its read-only file mappings drops
 * them from the process: its RSS falls by about 20 MB, and so does what the
 * kernel's OOM killer weighs it by (resident anonymous and file pages). The
 * pages stay in the page cache, clean and now unmapped, which the kernel
 * reclaims first when the node needs memory; a page used again is mapped
 * back from the cache on its next use, with no disk read unless it was
 * reclaimed meanwhile (about 10 MB came back within seconds). The
 * container's memory charge and the kubelet's working set do not change:
 * they never counted these inactive file pages.
 *
 * Only mappings that are not writable and hold no private copy of a page
 * (no `Anonymous` pages in smaps: the loader's relocated segments have
 * some) are advised, so no modified byte is ever thrown away.
 * `MADV_PAGEOUT`, which also tries to free the cache, was tried: in a memory
 * cgroup it freed 5 MB of cache and moved about 30 MB of the binary to the
 * active list, doubling the working set (docs/benchmarks.md).
 *
 * Once: the start's pages are the waste. An agent that works right away
 * waits until it idles; one that never idles keeps its pages.
 */
import { readFileSync } from 'node:fs'
import { watchCpuWindows } from './cpu-windows.ts'

const MADV_DONTNEED = 4

export interface StartupPagesInit {
  /** Unmaps the pages (unmapStartupPages in production). */
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

/**
 * Read-only private mappings of files in `/proc/<pid>/smaps` text that hold no
 * private copy of a page (no anonymous, writable, heap, stack or vdso ones).
 */
export function unmodifiedFileMappings (smaps: string): Array<{ start: bigint, length: number, path: string }> {
  const mappings: Array<{ start: bigint, length: number, path: string, eligible: boolean }> = []
  for (const line of smaps.split('\n')) {
    // start-end perms offset dev inode path; "(deleted)" files are left alone.
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ \S+ (\d+)\s*(.*)$/.exec(line)
    const last = mappings.at(-1)
    if (head !== null) {
      const [, from = '', to = '', perms = '', inode = '', path = ''] = head
      const start = BigInt('0x' + from)
      mappings.push({ start, length: Number(BigInt('0x' + to) - start), path, eligible: (perms === 'r--p' || perms === 'r-xp') && inode !== '0' && /^\/\S+$/.test(path) })
    } else if (last !== undefined && /^Anonymous:\s+[1-9]\d* kB/.test(line)) {
      last.eligible = false
    }
  }
  return mappings.filter(m => m.eligible).map(({ start, length, path }) => ({ start, length, path }))
}

export interface UnmapResult {
  /** Mappings advised, and those the kernel refused. */
  advised: number
  refused: number
  /** The process's file-backed resident MB before and right after. */
  fileMBBefore: number
  fileMBAfter: number
}

/**
 * `madvise(MADV_DONTNEED)` on this process's unmodified read-only file
 * mappings, through koffi (the FFI the edge CNI uses; shipped unbundled in
 * the image).
 */
export async function unmapStartupPages (): Promise<UnmapResult> {
  const fileMBBefore = fileBackedMB()
  const koffi = (await import('koffi')).default
  // The process's own symbols, libc's among them.
  const madvise = koffi.load(null as unknown as string).func('int madvise(uintptr_t addr, size_t length, int advice)') as (addr: bigint, length: number, advice: number) => number
  let advised = 0
  let refused = 0
  for (const { start, length } of unmodifiedFileMappings(readFileSync('/proc/self/smaps', 'utf8'))) {
    if (madvise(start, length, MADV_DONTNEED) === 0) advised++
    else refused++
  }
  return { advised, refused, fileMBBefore, fileMBAfter: fileBackedMB() }
}

/** A process's resident MB and the anonymous part of it, from `/proc/<pid>/smaps_rollup`. */
export function residentMB (pid: number | 'self' = 'self'): { rss: number, anon: number } {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
  const mb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? NaN) / 1024
  return { rss: mb('Rss'), anon: mb('Anonymous') }
}

/** Resident file-backed MB of this process (RSS minus its anonymous pages). */
export function fileBackedMB (): number {
  const { rss, anon } = residentMB()
  return rss - anon
}
