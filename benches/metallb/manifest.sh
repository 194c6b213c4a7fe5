#!/usr/bin/env bash
# Prints the path of MetalLB's own install manifest (config/manifests/
# metallb-native.yaml) of a release, as
#   metallb-native=<path>
#   metallb-version=<version>
# It comes from the same Go module benches/metallb/build.sh builds
# (go.universe.tf/metallb@<version>), read from the Go module cache: the
# module zip holds the repository's config/ tree, so MetalLB's RBAC, CRDs and
# Deployments are there exactly as released. `go mod download` fetches the
# module (checked against the checksum database) when the cache lacks it; a
# cached module costs nothing. Nothing is copied into this repository.
#
# Used by crates/controller/tests/migration.rs to give MetalLB's controller
# the RBAC MetalLB ships for it.
#
# Environment:
#   METALLB_VERSION   release (default v0.16.2, the one the benches measure)
#   GO                go command (default: go)
set -euo pipefail

version="${METALLB_VERSION:-v0.16.2}"
module=go.universe.tf/metallb@$version
# Outside any main module (so only the module itself is needed), with the
# local toolchain as build.sh uses.
cd "${TMPDIR:-/tmp}"
dir="$(GOTOOLCHAIN=local GOFLAGS=-mod=mod "${GO:-go}" mod download -json "$module" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
manifest="$dir/config/manifests/metallb-native.yaml"
[[ -f "$manifest" ]] || { echo "manifest.sh: no $manifest (go mod download $module)" >&2; exit 1; }
echo "metallb-native=$manifest"
echo "metallb-version=$version"
