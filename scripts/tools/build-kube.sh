#!/usr/bin/env bash
# Builds the real control plane the tests run against: kube-apiserver from the
# k8s.io/kubernetes Go module (throw-away module with the staging `replace`
# lines) and etcd from Debian. Binaries are cached by version, first in
# $EDGEMESH_TOOLS_CACHE (default ~/.cache/edgemesh-tools, survives fresh clones
# on the same machine), then linked into the git-ignored .tools/bin.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.35.4}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${EDGEMESH_TOOLS_CACHE:-$HOME/.cache/edgemesh-tools}"
bin="$root/.tools/bin"
mkdir -p "$cache" "$bin"

log() { printf '[build-kube] %s\n' "$*" >&2; }

# etcd: Debian's etcd-server (no other registry is reachable here).
if ! command -v etcd >/dev/null 2>&1 && [ ! -x /usr/bin/etcd ]; then
  if [ "$(id -u)" != 0 ]; then
    log "etcd is missing and installing it needs root (apt-get install etcd-server); control-plane tests will be skipped"
    exit 0
  fi
  log "installing etcd-server from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq etcd-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null; }
fi
# Debian starts an etcd service on install; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$bin/etcd"

# kube-apiserver for every control-plane test; kube-controller-manager for the
# installer test (a DaemonSet rollout needs the DaemonSet controller); kubectl,
# which the offline installer drives.
for cmd in kube-apiserver kube-controller-manager kubectl; do
  target="$cache/$cmd-$KUBE_VERSION"
  [ -x "$target" ] && { ln -sf "$target" "$bin/$cmd"; continue; }
  command -v go >/dev/null || { log "go is required to build $cmd"; exit 1; }
  work="$cache/src-kube-$KUBE_VERSION"
  # Older caches used a per-binary folder; reuse it (same module, same downloads).
  [ -d "$cache/src-kube-apiserver-$KUBE_VERSION" ] && [ ! -d "$work" ] && mv "$cache/src-kube-apiserver-$KUBE_VERSION" "$work"
  mkdir -p "$work"
  log "building $cmd $KUBE_VERSION (first time only; takes a while on 2 cores)"
  modfile="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
  staging_version="v0.${KUBE_VERSION#v1.}"
  {
    echo "module edgemesh.local/kubetools"
    echo
    echo "go $(sed -n 's/^go \(.*\)/\1/p' "$modfile")"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    grep -E '^\s+k8s.io/[a-z0-9-]+ v0\.0\.0$' "$modfile" | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > "$work/go.mod"
  cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$target.tmp" "k8s.io/kubernetes/cmd/$cmd")
  mv "$target.tmp" "$target"
  ln -sf "$target" "$bin/$cmd"
done
log "ready: $bin/kube-apiserver, kube-controller-manager, kubectl ($KUBE_VERSION), $bin/etcd"
