#!/usr/bin/env bash
# Builds the Go interop peer (test/interop/go-peer: go-libp2p with upstream's
# identity, PSK and proxy protocol) from Go modules, cached by the hash of its
# sources in $EDGEMESH_TOOLS_CACHE (default ~/.cache/edgemesh-tools) and
# linked into the git-ignored .tools/bin.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
src="$root/test/interop/go-peer"
cache="${EDGEMESH_TOOLS_CACHE:-$HOME/.cache/edgemesh-tools}"
bin="$root/.tools/bin"
mkdir -p "$cache" "$bin"
hash="$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-16)"
target="$cache/edgemesh-go-peer-$hash"
if [ ! -x "$target" ]; then
  command -v go >/dev/null || { echo "[build-go-peer] go is required" >&2; exit 1; }
  echo "[build-go-peer] building the go-libp2p interop peer (first time only)" >&2
  (cd "$src" && GOFLAGS=-trimpath go build -ldflags "-s -w" -o "$target.tmp" . && mv "$target.tmp" "$target")
fi
ln -sf "$target" "$bin/edgemesh-go-peer"
echo "[build-go-peer] ready: $bin/edgemesh-go-peer" >&2
