# Sourced by the build-*.sh scripts: `go_tool NAME PACKAGE@VERSION [LDFLAGS]` builds
# one binary from its Go module (no other registry is reachable), cached by version
# in $EDGEMESH_TOOLS_CACHE (default ~/.cache/edgemesh-tools) and linked into the
# git-ignored .tools/bin.
go_tool () {
  local name="$1" pkg="$2" ldflags="${3:--s -w}"
  local version="${pkg##*@}"
  local root cache bin target tmp
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  cache="${EDGEMESH_TOOLS_CACHE:-$HOME/.cache/edgemesh-tools}"
  bin="$root/.tools/bin"
  mkdir -p "$cache" "$bin"
  target="$cache/$name-$version"
  if [ ! -x "$target" ]; then
    command -v go >/dev/null || { echo "[build-$name] go is required to build $name" >&2; exit 1; }
    echo "[build-$name] building $name $version (first time only)" >&2
    tmp="$(mktemp -d)"
    GOBIN="$tmp" GOFLAGS=-trimpath go install -ldflags "$ldflags" "$pkg"
    mv "$tmp/$name" "$target"
    rm -rf "$tmp"
  fi
  ln -sf "$target" "$bin/$name"
}
