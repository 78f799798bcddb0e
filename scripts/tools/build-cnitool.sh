#!/usr/bin/env bash
# Builds cnitool (the CNI project's own test driver) from its Go module, cached
# by version in $EDGEMESH_TOOLS_CACHE and linked into the git-ignored .tools/bin:
# the CNI plugin's tests call it as a container runtime would.
set -euo pipefail

CNI_VERSION="${CNI_VERSION:-v1.3.1}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${EDGEMESH_TOOLS_CACHE:-$HOME/.cache/edgemesh-tools}"
bin="$root/.tools/bin"
mkdir -p "$cache" "$bin"
target="$cache/cnitool-$CNI_VERSION"
if [ ! -x "$target" ]; then
  command -v go >/dev/null || { echo "[build-cnitool] go is required to build cnitool" >&2; exit 1; }
  echo "[build-cnitool] building cnitool $CNI_VERSION (first time only)" >&2
  tmp="$(mktemp -d)"
  GOBIN="$tmp" GOFLAGS=-trimpath go install -ldflags "-s -w" "github.com/containernetworking/cni/cnitool@$CNI_VERSION"
  mv "$tmp/cnitool" "$target"
  rm -rf "$tmp"
fi
ln -sf "$target" "$bin/cnitool"
echo "[build-cnitool] ready: $bin/cnitool ($CNI_VERSION)" >&2
