/** Paths of the lab's workload scripts, and argv to run one with this Node. */
import { fileURLToPath } from 'node:url'

export const workloadFiles = {
  /** HTTP on 9376 answering POD_NAME, else NODE_NAME (like serve_hostname). */
  hostname: fileURLToPath(new URL('./hostname-server.ts', import.meta.url)),
  /** TCP or UDP echo; `--reflect` answers with the sender's ip:port instead. */
  echo: fileURLToPath(new URL('./echo-server.ts', import.meta.url)),
  /** Bulk TCP transfer server/client that measures throughput. */
  bulk: fileURLToPath(new URL('./bulk.ts', import.meta.url)),
  /** TCP/UDP reachability probe; UDP from one fixed local port to many targets. */
  probe: fileURLToPath(new URL('./probe.ts', import.meta.url)),
  /** One long-lived TCP connection to an echo server, a numbered line every 100 ms, echoes checked. */
  session: fileURLToPath(new URL('./session.ts', import.meta.url))
} as const

export type WorkloadName = keyof typeof workloadFiles

/** argv for `lab.spawn`/`lab.exec`: e.g. workload('echo', 'udp', '--port', '7'). */
export function workload (name: WorkloadName, ...args: string[]): string[] {
  return [process.execPath, workloadFiles[name], ...args]
}
