#!/usr/bin/env bash
# Copies the Gateway API CRDs the gateway serves (standard channel) from the
# sigs.k8s.io/gateway-api Go module's release into the edgemesh-gateway
# chart. Run again with another version to upgrade; the files are committed.
set -euo pipefail
version="${1:-v1.6.3}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@${version}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
out="$here/deploy/helm/edgemesh-gateway/crds"
mkdir -p "$out"
rm -f "$out"/gateway.networking.k8s.io_*.yaml
for kind in gatewayclasses gateways httproutes grpcroutes tlsroutes tcproutes referencegrants; do
  cp "$dir/config/crd/standard/gateway.networking.k8s.io_${kind}.yaml" "$out/"
done
chmod 644 "$out"/*.yaml
echo "Gateway API ${version} CRDs in $out"
