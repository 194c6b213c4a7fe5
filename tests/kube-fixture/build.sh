#!/usr/bin/env bash
# Builds the kube-fixture binary (kube-apiserver + etcd, and kubectl through a
# link to the same binary) into a cache directory keyed by a hash of the
# sources and the Go version, and prints the kube-fixture binary's path as
# the only line on stdout; kubectl is the link `kubectl` in the same directory.
# With unchanged sources a second run only hashes and prints.
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

# The Go version is part of the key: another toolchain compiles other code;
# so is this script, which sets the link flags.
hash="$(
    cd "$src"
    {
        "$go_cmd" env GOVERSION GOOS GOARCH
        find . -name '*.go' -type f | LC_ALL=C sort | xargs cat
        cat go.mod go.sum build.sh
    } | sha256sum | cut -c1-16
)"
out="$cache_root/kube-fixture-$hash"

print_paths() {
    echo "$out/kube-fixture"
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
    # Module builds do not stamp a version, and a server reporting v0.0.0
    # confuses clients that compare versions; stamp the pinned release.
    k8s_version="$("$go_cmd" list -m -f '{{.Version}}' k8s.io/kubernetes)"
    major="${k8s_version#v}"; major="${major%%.*}"
    minor="${k8s_version#v*.}"; minor="${minor%%.*}"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    # -s -w: no symbol table or DWARF; the link is the memory peak and the
    # binary is for tests, whose panics still print Go function names.
    "$go_cmd" build -trimpath -ldflags="$ldflags" -o "$tmp/kube-fixture" .
) >&2
# kube-fixture acts as kubectl when invoked under that name.
ln -s kube-fixture "$tmp/kubectl"
rm -rf "$out"
mv -T "$tmp" "$out"
trap - EXIT
# Each source change leaves a ~150 MB binary behind; keep the newest three.
ls -1dt "$cache_root"/kube-fixture-[0-9a-f]* 2>/dev/null | tail -n +4 | xargs -r rm -rf
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
print_paths
