#!/usr/bin/env bash
# Builds cnitool, the CNI project's own test driver, from its Go module, cached
# by version (scripts/tools/go-tool.sh): the CNI plugin's tests call it as a
# container runtime would.
set -euo pipefail

CNI_VERSION="${CNI_VERSION:-v1.3.1}"
source "$(dirname "$0")/go-tool.sh"
go_tool cnitool "github.com/containernetworking/cni/cnitool@$CNI_VERSION"
echo "[build-cnitool] ready: $(cd "$(dirname "$0")/../.." && pwd)/.tools/bin/cnitool ($CNI_VERSION)" >&2
