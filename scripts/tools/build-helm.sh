#!/usr/bin/env bash
# Builds Helm from its Go module, cached by version (scripts/tools/go-tool.sh).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.2}"
source "$(dirname "$0")/go-tool.sh"
go_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
bin="$(cd "$(dirname "$0")/../.." && pwd)/.tools/bin"
echo "[build-helm] ready: $bin/helm ($("$bin/helm" version --short 2>/dev/null || echo "$HELM_VERSION"))" >&2
