#!/usr/bin/env bash
# Builds Helm from its Go module (no other registry is reachable), cached by
# version in $EDGEMESH_TOOLS_CACHE (default ~/.cache/edgemesh-tools) and linked
# into the git-ignored .tools/bin.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.2}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${EDGEMESH_TOOLS_CACHE:-$HOME/.cache/edgemesh-tools}"
bin="$root/.tools/bin"
mkdir -p "$cache" "$bin"
target="$cache/helm-$HELM_VERSION"
if [ ! -x "$target" ]; then
  command -v go >/dev/null || { echo "[build-helm] go is required to build helm" >&2; exit 1; }
  echo "[build-helm] building helm $HELM_VERSION (first time only)" >&2
  tmp="$(mktemp -d)"
  GOBIN="$tmp" GOFLAGS=-trimpath go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$tmp/helm" "$target"
  rm -rf "$tmp"
fi
ln -sf "$target" "$bin/helm"
echo "[build-helm] ready: $bin/helm ($("$bin/helm" version --short 2>/dev/null || echo "$HELM_VERSION"))" >&2
