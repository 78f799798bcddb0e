// The esbuild options that shape the code production runs, shared by
// scripts/build.ts (dist/) and bench/bundle.ts, so the benches measure the
// same code: tree-shaken, runnable by a plain `node` without type stripping,
// and split so that code behind a dynamic import (libp2p, loaded only when
// the tunnel starts) is not even parsed by agents that do not use it: about
// 8 MB of idle RSS (bench/footprint).
import type { BuildOptions } from 'esbuild'

export const BUNDLE_OPTIONS = {
  outExtension: { '.js': '.mjs' },
  splitting: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  // Whitespace and comments out, names kept: V8 holds each chunk's source for
  // as long as the process runs, and one non-Latin-1 character in a comment
  // made it a two-byte string (the main chunk: 2.5 MB of heap, now 0.8 MB).
  minifyWhitespace: true,
  charset: 'ascii',
  // Pretty logs are for terminals only; containers log JSON and never load it. koffi (the edge
  // CNI's FFI) loads its native addon from its package folder, so the image ships it unbundled.
  external: ['pino-pretty', 'koffi'],
  // Bundled CommonJS dependencies call require(); give them one.
  banner: { js: "import { createRequire as __edgemeshCreateRequire } from 'node:module'; const require = __edgemeshCreateRequire(import.meta.url);" },
  logLevel: 'warning'
} as const satisfies BuildOptions
