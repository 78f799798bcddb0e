#!/usr/bin/env bash
# EdgeMesh (TypeScript) offline installer: runs from the unpacked
# edgemesh-offline-<version>-<arch> folder, needs kubectl and helm, no internet.
#
#   ./install.sh                      asks before installing (是否安装 EdgeMesh? (y/n))
#   ./install.sh --yes                no questions; PSK generated, relays picked
#   ./install.sh --help               every option
#
# Idempotent: a second run with the same inputs changes nothing; a run with
# other inputs upgrades. A failed install or upgrade is rolled back by Helm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(cat "$here/VERSION" 2>/dev/null || echo unknown)"

namespace=kubeedge
release=edgemesh
psk=""
psk_file="./edgemesh-psk.txt"
relays=()
max_relays=2
assume_yes=false
force=false
skip_images=false
image=""
gateway_node=""
timeout=300s
uninstall=false
helm_sets=()

usage() {
  cat <<EOF
EdgeMesh ${version} offline installer

Usage: $0 [options]

  -y, --yes                 install without asking
  --psk PSK                 the tunnel's pre-shared key (default: the one in --psk-file,
                            else the one the cluster already has, else a new random one)
  --psk-file FILE           where the PSK is kept (default ./edgemesh-psk.txt, mode 0600;
                            never overwritten)
  --relay NAME=ADDR[,ADDR]  a relay node and its advertised address(es); repeat for more.
                            Default: up to --max-relays cloud nodes, control-plane first,
                            ExternalIP else InternalIP
  --max-relays N            how many relays to pick (default 2)
  --namespace NS            default kubeedge
  --release NAME            Helm release name (default edgemesh)
  --image IMAGE             agent image (default: the one in images/)
  --skip-images             do not import images/*.tar into a local container runtime
  --gateway NODE            also install the edge gateway (edgemesh-gateway) on NODE
  --set KEY=VALUE           extra Helm value for the edgemesh chart (repeatable)
  --timeout DURATION        how long to wait for the rollout (default 300s)
  --force                   allow replacing the cluster's PSK with another one
  --uninstall               remove the releases and the edge CNI's pod block claims (the PSK file is kept)
  -h, --help                this text

Environment: KUBECONFIG, KUBECTL and HELM (default: kubectl and helm on PATH, else the
bundle's bin/kubectl and bin/helm).
EOF
}

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    -y|--yes) assume_yes=true ;;
    --psk) [ $# -ge 2 ] || die "--psk needs a value"; psk="$2"; shift ;;
    --psk=*) psk="${1#*=}" ;;
    --psk-file) [ $# -ge 2 ] || die "--psk-file needs a value"; psk_file="$2"; shift ;;
    --relay) [ $# -ge 2 ] || die "--relay needs NAME=ADDR"; relays+=("$2"); shift ;;
    --max-relays) [ $# -ge 2 ] || die "--max-relays needs a number"; max_relays="$2"; shift ;;
    --namespace|-n) [ $# -ge 2 ] || die "--namespace needs a value"; namespace="$2"; shift ;;
    --release) [ $# -ge 2 ] || die "--release needs a value"; release="$2"; shift ;;
    --image) [ $# -ge 2 ] || die "--image needs a value"; image="$2"; shift ;;
    --skip-images) skip_images=true ;;
    --gateway) [ $# -ge 2 ] || die "--gateway needs a node name"; gateway_node="$2"; shift ;;
    --set) [ $# -ge 2 ] || die "--set needs KEY=VALUE"; helm_sets+=(--set "$2"); shift ;;
    --timeout) [ $# -ge 2 ] || die "--timeout needs a duration"; timeout="$2"; shift ;;
    --force) force=true ;;
    --uninstall) uninstall=true ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done

# The host's kubectl and helm if it has them, else the bundle's (bin/, built for this architecture).
default_tool() { if command -v "$1" >/dev/null 2>&1 || [ ! -x "$here/bin/$1" ]; then echo "$1"; else echo "$here/bin/$1"; fi; }
KUBECTL="${KUBECTL:-$(default_tool kubectl)}"
HELM="${HELM:-$(default_tool helm)}"
[[ "$max_relays" =~ ^[1-9][0-9]*$ ]] || die "--max-relays must be a positive number, got '$max_relays'"

# --- prerequisites ----------------------------------------------------------
command -v "$KUBECTL" >/dev/null 2>&1 || die "kubectl not found (set KUBECTL=/path/to/kubectl or put it on PATH)"
command -v "$HELM" >/dev/null 2>&1 || die "helm not found (Helm 3 is needed: set HELM=/path/to/helm or put it on PATH)"
if ! err="$("$KUBECTL" get --raw=/readyz --request-timeout=10s 2>&1 >/dev/null)"; then
  die "cannot reach the cluster with kubectl (${KUBECONFIG:-~/.kube/config}): ${err##*$'\n'}"
fi

chart="$here/helm-charts/edgemesh.tgz"
gateway_chart="$here/helm-charts/edgemesh-gateway.tgz"
[ -f "$chart" ] || die "missing $chart: run install.sh from the unpacked offline bundle"

release_status() { "$HELM" status "$1" --namespace "$namespace" -o json 2>/dev/null | grep -o '"status":"[a-z-]*"' | head -1 | cut -d'"' -f4 || true; }

if $uninstall; then
  for r in "$release-gateway" "$release"; do
    if [ -n "$(release_status "$r")" ]; then "$HELM" uninstall "$r" --namespace "$namespace" --wait --timeout "$timeout"; say "removed release $r"; fi
  done
  # The edge CNI's pod block claims (Leases) outlive the release: without this a reinstall keeps the old blocks.
  if claims="$("$KUBECTL" --namespace "$namespace" delete lease -l edgemesh.kubeedge.io/pod-block=true --ignore-not-found -o name 2>&1)"; then
    [ -z "$claims" ] || say "released $(printf '%s\n' "$claims" | grep -c .) edge CNI pod block claim(s)"
  else
    say "warning: the edge CNI's pod block claims were not released: ${claims##*$'\n'}"
  fi
  say "The PSK file ($psk_file) is kept. On each node, 'edgemesh cleanup' removes leftover rules and the interface."
  exit 0
fi

# --- PSK ---------------------------------------------------------------------
valid_psk() {
  [ "${#1}" -ge 16 ] || die "the PSK is too short (${#1} characters): use at least 16, e.g. 32 random bytes in base64"
  case "$1" in *[![:print:]]*) die "the PSK must be one line of printable characters" ;; esac
  case "$1" in
    "<"*">"|'JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=') die "the PSK is a published placeholder or upstream's default, which anyone can read: leave --psk out to have one generated" ;;
  esac
}
cluster_psk=""
if data="$("$KUBECTL" --namespace "$namespace" get secret "$release-agent-psk" -o 'jsonpath={.data.psk}' 2>/dev/null)" && [ -n "$data" ]; then
  cluster_psk="$(printf '%s' "$data" | base64 -d)"
fi
file_psk=""
if [ -e "$psk_file" ]; then
  [ -r "$psk_file" ] || die "$psk_file exists but cannot be read"
  file_psk="$(head -n1 "$psk_file" | tr -d '\r\n')"
  [ -n "$file_psk" ] || die "$psk_file is empty: remove it or write the PSK into it"
fi
psk_source=""
if [ -n "$psk" ]; then
  psk_source="given with --psk"
  [ -z "$file_psk" ] || [ "$file_psk" = "$psk" ] || die "$psk_file holds another PSK: it is never overwritten; remove it or pass --psk-file with another path"
elif [ -n "$file_psk" ]; then
  psk="$file_psk"; psk_source="read from $psk_file"
elif [ -n "$cluster_psk" ]; then
  psk="$cluster_psk"; psk_source="read from the cluster (secret $namespace/$release-agent-psk)"
else
  psk="$(head -c 32 /dev/urandom | base64)"; psk_source="generated (32 random bytes, base64)"
fi
valid_psk "$psk"
if [ -n "$cluster_psk" ] && [ "$cluster_psk" != "$psk" ] && ! $force; then
  die "the cluster already runs with another PSK (secret $namespace/$release-agent-psk); changing it disconnects nodes until all restart. Pass --force to replace it, or --psk-file pointing at the current one"
fi

# --- relay nodes -------------------------------------------------------------
# One line per node: name ,label-keys, ext:ExternalIPs, int:InternalIPs,
# (role labels have empty values, so keys are listed and matched in bash).
node_table() {
  # shellcheck disable=SC2016 # a Go template, not shell
  "$KUBECTL" get nodes -o go-template='{{range .items}}{{.metadata.name}} ,{{range $k, $v := .metadata.labels}}{{$k}},{{end}} ext:{{range .status.addresses}}{{if eq .type "ExternalIP"}}{{.address}},{{end}}{{end}} int:{{range .status.addresses}}{{if eq .type "InternalIP"}}{{.address}},{{end}}{{end}}{{"\n"}}{{end}}'
}
role_of() {
  case "$1" in
    *,node-role.kubernetes.io/edge,*) echo edge ;;
    *,node-role.kubernetes.io/control-plane,*|*,node-role.kubernetes.io/master,*) echo cp ;;
    *) echo cloud ;;
  esac
}
relay_names=()
relay_addrs=()
if [ ${#relays[@]} -gt 0 ]; then
  for r in "${relays[@]}"; do
    [[ "$r" == *=* ]] || die "--relay '$r': expected NAME=ADDR[,ADDR]"
    name="${r%%=*}"; addrs="${r#*=}"
    if [ -z "$name" ] || [ -z "$addrs" ]; then die "--relay '$r': expected NAME=ADDR[,ADDR]"; fi
    relay_names+=("$name"); relay_addrs+=("$addrs")
  done
else
  table="$(node_table)" || die "cannot list nodes (kubectl get nodes)"
  # Control-plane nodes first, then other cloud nodes; edge nodes never.
  for role in cp cloud; do
    while read -r name labels ext int; do
      if [ -z "$name" ] || [ "$(role_of "$labels")" != "$role" ]; then continue; fi
      [ ${#relay_names[@]} -lt "$max_relays" ] || break
      ext="${ext#ext:}"; int="${int#int:}"
      addr="${ext%%,*}"; [ -n "$addr" ] || addr="${int%%,*}"
      [ -n "$addr" ] || { say "skipping $name as a relay: it reports no ExternalIP or InternalIP"; continue; }
      relay_names+=("$name"); relay_addrs+=("$addr")
    done <<< "$table"
  done
  [ ${#relay_names[@]} -gt 0 ] || die "no cloud node found to be a relay (nodes labelled node-role.kubernetes.io/edge are skipped); pass --relay NAME=ADDR"
fi

# --- images ------------------------------------------------------------------
arch_of() { case "$(uname -m)" in x86_64|amd64) echo amd64 ;; aarch64|arm64) echo arm64 ;; *) uname -m ;; esac; }
image_tar=""
for f in "$here"/images/edgemesh-agent-*-"$(arch_of)".tar; do [ -f "$f" ] && image_tar="$f"; done
if [ -z "$image" ]; then image="$(cat "$here/images/IMAGE" 2>/dev/null || echo "kubeedge/edgemesh-agent:v$version")"; fi

# --- the plan ----------------------------------------------------------------
values="$(mktemp)"
trap 'rm -f "$values"' EXIT
chmod 600 "$values"
yaml_quote() { printf "'%s'" "${1//\'/\'\'}"; }
{
  echo "agent:"
  echo "  image: $(yaml_quote "$image")"
  echo "  psk: $(yaml_quote "$psk")"
  echo "  relayNodes:"
  for i in "${!relay_names[@]}"; do
    echo "    - nodeName: $(yaml_quote "${relay_names[$i]}")"
    echo "      advertiseAddress:"
    IFS=, read -ra list <<< "${relay_addrs[$i]}"
    for a in "${list[@]}"; do echo "        - $(yaml_quote "$a")"; done
  done
} > "$values"

say "EdgeMesh $version"
say "  cluster:     $("$KUBECTL" config current-context 2>/dev/null || echo in-cluster)"
say "  namespace:   $namespace (release $release)"
say "  image:       $image"
say "  PSK:         $psk_source; kept in $psk_file"
say "  relay nodes:"
for i in "${!relay_names[@]}"; do say "    - ${relay_names[$i]} (${relay_addrs[$i]})"; done
[ -z "$gateway_node" ] || say "  gateway:     on node $gateway_node"

if ! $assume_yes; then
  [ -t 0 ] || die "not a terminal: pass --yes to install without asking"
  read -r -p "是否安装 EdgeMesh? (y/n) " answer
  case "$answer" in y|Y|yes|YES) ;; *) say "Not installed."; exit 1 ;; esac
fi

# --- import images -------------------------------------------------------------
if ! $skip_images; then
  # The first runtime whose CLI answers (a docker CLI without its daemon does not).
  runtime=""
  present=()
  for r in ctr docker nerdctl podman; do
    command -v "$r" >/dev/null 2>&1 || continue
    present+=("$r")
    case "$r" in
      ctr) timeout 10 ctr --namespace k8s.io version >/dev/null 2>&1 && runtime=ctr ;;
      *) timeout 10 "$r" info >/dev/null 2>&1 && runtime="$r" ;;
    esac
    [ -z "$runtime" ] || break
  done
  import_cmd=()
  case "$runtime" in
    ctr) import_cmd=(ctr --namespace k8s.io images import) ;;
    docker) import_cmd=(docker load --input) ;;
    nerdctl) import_cmd=(nerdctl --namespace k8s.io load --input) ;;
    podman) import_cmd=(podman load --input) ;;
  esac
  if [ -z "$image_tar" ]; then
    say "no image for $(arch_of) in $here/images: skipping the import"
  elif [ -z "$runtime" ]; then
    if [ ${#present[@]} -gt 0 ]; then
      say "found ${present[*]} but none answers here (is its daemon running?): import the image on every node yourself,"
    else
      say "no container runtime CLI here (ctr, docker, nerdctl, podman): import the image on every node yourself,"
    fi
    say "  e.g. ctr -n k8s.io images import $(basename "${image_tar}")   (images/ holds one per architecture)"
  elif ! "${import_cmd[@]}" "$image_tar"; then
    say "importing $(basename "$image_tar") with $runtime failed: import it on every node yourself (images/ holds one per architecture)"
  fi
  say "Nodes without internet need the image too: copy images/*.tar to each node and import it there."
fi

# --- save the PSK (before Helm: a key in use is never lost) ----------------------
created_psk_file=false
if [ ! -e "$psk_file" ]; then
  (umask 077 && printf '%s\n' "$psk" > "$psk_file")
  created_psk_file=true
fi
chmod 600 "$psk_file"

# --- install or upgrade ------------------------------------------------------------
helm_args=(--namespace "$namespace" -f "$values" "${helm_sets[@]}")
if [ -n "$(release_status "$release")" ]; then
  desired="$("$HELM" template "$release" "$chart" "${helm_args[@]}")" || die "helm template failed"
  current="$("$HELM" get manifest "$release" --namespace "$namespace")"
  if [ "$desired" = "$current" ] && [ "$(release_status "$release")" = deployed ]; then
    say "Release $release is already installed with these settings: nothing to change."
    changed=false
  else
    changed=true
  fi
else
  changed=true
fi
if $changed; then
  say "Installing with Helm (upgrade --install --atomic: a failure rolls back)..."
  if ! "$HELM" upgrade --install "$release" "$chart" "${helm_args[@]}" --create-namespace --atomic --wait --timeout "$timeout" >/dev/null; then
    if $created_psk_file && [ -z "$(release_status "$release")" ]; then rm -f "$psk_file"; fi
    die "helm could not install $release (rolled back; see the messages above)"
  fi
fi

if [ -n "$gateway_node" ]; then
  [ -f "$gateway_chart" ] || die "missing $gateway_chart"
  gw_values="$(mktemp)"
  trap 'rm -f "$values" "$gw_values"' EXIT
  chmod 600 "$gw_values"
  { echo "nodeName: $(yaml_quote "$gateway_node")"; sed -n 's/^  //p' "$values"; } > "$gw_values"
  "$HELM" upgrade --install "$release-gateway" "$gateway_chart" --namespace "$namespace" -f "$gw_values" --atomic --wait --timeout "$timeout" >/dev/null \
    || die "helm could not install $release-gateway (rolled back)"
fi

say "Waiting for the agents to roll out..."
"$KUBECTL" --namespace "$namespace" rollout status daemonset/"$release-agent" --timeout "$timeout" \
  || die "the DaemonSet $namespace/$release-agent did not roll out in $timeout: kubectl -n $namespace get pods -l kubeedge=edgemesh-agent"

cat <<EOF

EdgeMesh $version is installed. The PSK is in $psk_file (keep it; nodes joining later need the same one).

On every edge node, in /etc/kubeedge/config/edgecore.yaml:
  modules.metaManager.metaServer.enable: true
  modules.edged.tailoredKubeletConfig.clusterDNS: ["169.254.96.16"]
  modules.edged.tailoredKubeletConfig.clusterDomain: cluster.local
then: systemctl restart edgecore
and check the node with: kubectl -n $namespace exec <edgemesh-agent pod on that node> -- edgemesh doctor
EOF
