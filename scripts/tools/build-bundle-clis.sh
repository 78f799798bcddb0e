#!/usr/bin/env bash
# Builds the Helm and kubectl the offline bundle ships in bin/, for one
# architecture: static (CGO off) Linux binaries from their Go modules, cached
# by version and architecture in $EDGEMESH_TOOLS_CACHE (default
# ~/.cache/edgemesh-tools). kubectl reuses the module folder build-kube.sh
# prepares (the same k8s.io/kubernetes version and staging replaces).
#   build-bundle-clis.sh amd64|arm64   prints the folder holding helm and kubectl
set -euo pipefail

arch="${1:?usage: build-bundle-clis.sh amd64|arm64}"
case "$arch" in amd64|arm64) ;; *) echo "[build-bundle-clis] amd64 or arm64, got $arch" >&2; exit 2 ;; esac
HELM_VERSION="${HELM_VERSION:-v3.19.2}"
KUBE_VERSION="${KUBE_VERSION:-v1.35.4}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${EDGEMESH_TOOLS_CACHE:-$HOME/.cache/edgemesh-tools}"
out="$cache/bundle-clis-$arch"
mkdir -p "$out"
log() { printf '[build-bundle-clis] %s\n' "$*" >&2; }
command -v go >/dev/null || { log "go is required"; exit 1; }
export CGO_ENABLED=0 GOOS=linux GOARCH="$arch" GOFLAGS=-trimpath

if [ ! -x "$out/helm-$HELM_VERSION" ]; then
  log "building helm $HELM_VERSION for linux/$arch (first time only)"
  tmp="$(mktemp -d)"
  # go install refuses GOBIN for cross builds: build in a throw-away module instead.
  (cd "$tmp" && go mod init edgemesh.local/helm >/dev/null 2>&1 && GOFLAGS=-mod=mod go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >/dev/null 2>&1 \
    && go build -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$out/helm-$HELM_VERSION.tmp" helm.sh/helm/v3/cmd/helm)
  rm -rf "$tmp"
  mv "$out/helm-$HELM_VERSION.tmp" "$out/helm-$HELM_VERSION"
fi

if [ ! -x "$out/kubectl-$KUBE_VERSION" ]; then
  work="$cache/src-kube-$KUBE_VERSION"
  [ -f "$work/go.mod" ] || { log "run scripts/tools/build-kube.sh first (it prepares $work)"; exit 1; }
  log "building kubectl $KUBE_VERSION for linux/$arch (first time only; takes a while on 2 cores)"
  (cd "$work" && GOFLAGS="-mod=mod -trimpath" go build -ldflags='-s -w' -o "$out/kubectl-$KUBE_VERSION.tmp" k8s.io/kubernetes/cmd/kubectl)
  mv "$out/kubectl-$KUBE_VERSION.tmp" "$out/kubectl-$KUBE_VERSION"
fi
ln -sf "helm-$HELM_VERSION" "$out/helm"
ln -sf "kubectl-$KUBE_VERSION" "$out/kubectl"
echo "$out"
