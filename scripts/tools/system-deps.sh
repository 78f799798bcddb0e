#!/usr/bin/env bash
# Installs the Debian packages the tests and the lab use, if missing.
set -euo pipefail
need=()
for pair in ip:iproute2 nft:nftables iptables:iptables dig:dnsutils curl:curl openssl:openssl etcd:etcd-server tc:iproute2 qemu-aarch64-static:qemu-user-static script:bsdutils; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/bin/${pair%%:*}" ] || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
done
[ "${#need[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "[system-deps] missing Debian packages (install as root): ${need[*]}" >&2
  exit 0
fi
echo "[system-deps] installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
