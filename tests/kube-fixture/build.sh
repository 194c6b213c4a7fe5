#!/usr/bin/env bash
# Builds the kube-fixture binary (kube-apiserver + etcd, and kubectl through a
# link to the same binary) into a cache directory keyed by a hash of the
# sources and the Go version, and prints
#   kube-fixture=<path>
#   kubectl=<path>
# on stdout. With unchanged sources a second run only hashes and prints.
#
# Environment:
#   FERROLB_CACHE   cache root (default $HOME/.cache/ferrolb)
#   GO              go command to use (default: go)
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
go_cmd="${GO:-go}"
cache_root="${FERROLB_CACHE:-${HOME:-/tmp}/.cache/ferrolb}"

if ! command -v "$go_cmd" >/dev/null 2>&1; then
    echo "build.sh: '$go_cmd' not found; the kube fixture needs a Go toolchain (see docs/kube-fixture.md)" >&2
    exit 1
fi

# The Go version is part of the key: another toolchain compiles other code.
hash="$(
    cd "$src"
    {
        "$go_cmd" env GOVERSION GOOS GOARCH
        find . -name '*.go' -type f | LC_ALL=C sort | xargs cat
        cat go.mod go.sum
    } | sha256sum | cut -c1-16
)"
out="$cache_root/kube-fixture-$hash"

print_paths() {
    echo "kube-fixture=$out/kube-fixture"
    echo "kubectl=$out/kubectl"
}

if [[ -x "$out/kube-fixture" && -L "$out/kubectl" ]]; then
    print_paths
    exit 0
fi

mkdir -p "$cache_root"
# Test binaries or engineers may build at the same time; one build is enough.
exec 9>"$cache_root/kube-fixture.lock"
flock 9
if [[ -x "$out/kube-fixture" && -L "$out/kubectl" ]]; then
    print_paths
    exit 0
fi

tmp="$(mktemp -d "$cache_root/kube-fixture-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "build.sh: building kube-fixture into $out (a cold build takes 10+ minutes on 2 cores)" >&2
start=$(date +%s)
(
    cd "$src"
    # -s -w: no symbol table or DWARF; the link is the memory peak and the
    # binary is for tests, whose panics still print Go function names.
    "$go_cmd" build -trimpath -ldflags='-s -w' -o "$tmp/kube-fixture" .
) >&2
# kube-fixture acts as kubectl when invoked under that name.
ln -s kube-fixture "$tmp/kubectl"
rm -rf "$out"
mv -T "$tmp" "$out"
trap - EXIT
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
print_paths
