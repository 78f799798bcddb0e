import { createRequire } from 'node:module'

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string }

/** Upstream prints `KubeEdge EdgeMesh <version>`; we name ourselves. */
export function versionString (): string {
  return `EdgeMesh-TS ${pkg.version} (node ${process.version}, ${process.platform}/${process.arch})`
}
