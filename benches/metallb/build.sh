#!/usr/bin/env bash
# Builds MetalLB's controller and speaker from its Go module
# (go.universe.tf/metallb) at a release, through the Go module proxy, into
#   ${FERROLB_CACHE:-$HOME/.cache/ferrolb}/metallb-<version>/{controller,speaker}
# and prints
#   metallb-controller=<path>
#   metallb-speaker=<path>
#   metallb-version=<version>
# on stdout. A second run with the same version, replaces and Go toolchain
# only prints. No MetalLB source is kept in this repository: the module comes
# from the proxy into the Go module cache, as any dependency would.
#
# How: a throwaway main module in the cache dir requires
# go.universe.tf/metallb@<version> and builds its package
# go.universe.tf/metallb/controller and go.universe.tf/metallb/speaker, with
# CGO_ENABLED=0 as upstream's Dockerfiles do. Plain `go install pkg@version` would do if every dependency
# were on the proxy; for v0.16.2 one is not:
#
#   github.com/metallb/frr-k8s v0.0.27 (MetalLB's frr-k8s BGP backend API):
#   the proxy answers "403 This module version is not available" for its zip.
#   v0.0.26 is served but lacks one type and one field that MetalLB's
#   internal/bgp/frrk8s uses (frr-k8s's AsPathPrependPrefixes and
#   Advertise.PrefixesWithAsPathPrepend). So the throwaway module replaces
#   frr-k8s with a copy of v0.0.26 (in the cache dir, never committed) plus
#   that type and field, their shape dictated by MetalLB's use of them. That
#   code builds FRRConfiguration objects for the speaker in frr-k8s mode
#   (METALLB_BGP_TYPE=frr-k8s), which the layer 2 failover bench does not
#   use; the controller links it (internal/k8s/controllers) but never runs it.
#
# Environment:
#   METALLB_VERSION   release to build (default: newest release the proxy lists)
#   METALLB_REPLACES  extra space-separated old=new@version replaces for the
#                     throwaway module (default none)
#   FERROLB_CACHE     cache root (default $HOME/.cache/ferrolb)
#   GO                go command (default: go)
set -euo pipefail

go_cmd="${GO:-go}"
cache_root="${FERROLB_CACHE:-${HOME:-/tmp}/.cache/ferrolb}"
module=go.universe.tf/metallb

if ! command -v "$go_cmd" >/dev/null 2>&1; then
    echo "build.sh: '$go_cmd' not found; building MetalLB needs a Go toolchain" >&2
    exit 1
fi
# MetalLB's go.mod names a newer patch toolchain (go1.26.9) than the machine
# may have; its `go 1.26.0` line is what matters, so never fetch a toolchain.
export GOTOOLCHAIN=local

version="${METALLB_VERSION:-}"
if [[ -z "$version" ]]; then
    # Newest non-prerelease version the proxy lists.
    version="$("$go_cmd" list -m -versions "$module" | tr ' ' '\n' | tail -n +2 \
        | grep -E '^v[0-9]+\.[0-9]+\.[0-9]+$' | sort -V | tail -n 1)"
fi
[[ -n "$version" ]] || { echo "build.sh: no release of $module found" >&2; exit 1; }

METALLB_REPLACES="${METALLB_REPLACES:-}"
frr_shim=""
case "$version" in
    v0.16.2) frr_shim="github.com/metallb/frr-k8s@v0.0.26" ;;
esac

out="$cache_root/metallb-$version"
key="$("$go_cmd" env GOVERSION) replaces=[$METALLB_REPLACES] frr-shim=[$frr_shim] script=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"

print_paths() {
    echo "metallb-controller=$out/controller"
    echo "metallb-speaker=$out/speaker"
    echo "metallb-version=$version"
}
cached() { [[ -x "$out/controller" && -x "$out/speaker" && "$(cat "$out/key" 2>/dev/null)" == "$key" ]]; }

if cached; then print_paths; exit 0; fi

mkdir -p "$cache_root"
exec 9>"$cache_root/metallb.lock"
flock 9
if cached; then print_paths; exit 0; fi

tmp="$(mktemp -d "$cache_root/metallb-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "build.sh: building $module/{controller,speaker}@$version into $out" >&2
[[ -n "$METALLB_REPLACES" ]] && echo "build.sh: with replaces: $METALLB_REPLACES" >&2
[[ -n "$frr_shim" ]] && echo "build.sh: with $frr_shim plus the shim described above" >&2
start=$(date +%s)
(
    mkdir "$tmp/mod"
    cd "$tmp/mod"
    cat >go.mod <<MOD
module ferrolb.invalid/metallb-build

go 1.26.0
MOD
    if [[ -n "$frr_shim" ]]; then
        dir="$("$go_cmd" mod download -json "$frr_shim" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
        [[ -d "$dir" ]] || { echo "build.sh: could not download $frr_shim" >&2; exit 1; }
        cp -r "$dir" "$tmp/frr-k8s"
        chmod -R u+w "$tmp/frr-k8s"
        types="$tmp/frr-k8s/api/v1beta1/frrconfiguration_types.go"
        grep -q '^type Advertise struct {$' "$types" || { echo "build.sh: frr-k8s shim: no Advertise struct" >&2; exit 1; }
        sed -i 's|^type Advertise struct {$|&\n\tPrefixesWithAsPathPrepend []AsPathPrependPrefixes `json:"withAsPathPrepend,omitempty"`|' "$types"
        cat >"$tmp/frr-k8s/api/v1beta1/zz_ferrolb_shim.go" <<'GO'
package v1beta1

// Added at build time by ferrolb's benches/metallb/build.sh: frr-k8s v0.0.27,
// which MetalLB v0.16.2 requires, is not served by the Go module proxy.
type AsPathPrependPrefixes struct {
	AsPathPrepend uint8    `json:"asPathPrepend,omitempty"`
	Prefixes      []string `json:"prefixes,omitempty"`
}
GO
        "$go_cmd" mod edit -replace="github.com/metallb/frr-k8s=$tmp/frr-k8s"
    fi
    for r in $METALLB_REPLACES; do
        old="${r%%=*}"; new="${r#*=}"
        "$go_cmd" mod edit -replace="$old=${new%@*}@${new##*@}"
    done
    # Adds the requirement and the go.sum lines both commands' packages need
    # (checked against the checksum database as usual).
    "$go_cmd" get "$module/controller@$version" "$module/speaker@$version"
    # Same flags as upstream's controller/ and speaker/ Dockerfiles:
    # CGO_ENABLED=0, not stripped (only their -X git stamps are left out:
    # there is no checkout).
    for cmd in controller speaker; do
        CGO_ENABLED=0 "$go_cmd" build -o "$tmp/$cmd" "$module/$cmd"
    done
    # What went in, for the record.
    "$go_cmd" list -m all >"$tmp/modules.txt"
) >&2
echo "$key" >"$tmp/key"
secs=$(( $(date +%s) - start ))
echo "$secs" >"$tmp/build-seconds"
rm -rf "$tmp/mod" "$tmp/frr-k8s"
rm -rf "$out"
mv -T "$tmp" "$out"
trap - EXIT
echo "build.sh: built in ${secs}s" >&2
print_paths
