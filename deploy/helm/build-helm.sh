#!/usr/bin/env bash
# Builds helm (a Go module, helm.sh/helm/v3) into a cache directory and prints
#   helm=<path>
# Helm is not packaged in Debian; the chart tests use this build. About two
# minutes on two cores the first time, instant afterwards.
#
# Environment:
#   FERROLB_CACHE   cache root (default $HOME/.cache/ferrolb)
#   GO              go command to use (default: go)
set -euo pipefail
version=v3.19.0
go_cmd="${GO:-go}"
cache_root="${FERROLB_CACHE:-${HOME:-/tmp}/.cache/ferrolb}"
out="$cache_root/helm-$version"
if [[ ! -x "$out/helm" ]]; then
    command -v "$go_cmd" >/dev/null || { echo "build-helm.sh: '$go_cmd' not found" >&2; exit 1; }
    mkdir -p "$out"
    tmp="$(mktemp -d "$cache_root/helm-build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    echo "build-helm.sh: building helm $version (first time only)" >&2
    # The version stamp makes `helm version` honest; GOBIN into a temp dir
    # then rename keeps a half-built binary out of the cache.
    (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod "$go_cmd" install \
        -ldflags "-X helm.sh/helm/v3/internal/version.version=$version" \
        "helm.sh/helm/v3/cmd/helm@$version") >&2
    mv "$tmp/helm" "$out/helm"
fi
echo "helm=$out/helm"
