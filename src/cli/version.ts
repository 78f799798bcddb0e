import pkg from '../../package.json' with { type: 'json' }

/** Upstream prints `KubeEdge EdgeMesh <version>`; we name ourselves. */
export function versionString (): string {
  return `EdgeMesh-TS ${pkg.version} (node ${process.version}, ${process.platform}/${process.arch})`
}
