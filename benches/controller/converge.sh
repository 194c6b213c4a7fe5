#!/usr/bin/env bash
# Convergence benchmark of the controller on the real API server fixture:
# creates $SERVICES (default 5000) LoadBalancer Services, starts
# `ferrolb controller`, and prints the seconds until every Service has its
# address, the controller's peak RSS and its API requests per Service.
#
# Usage: benches/controller/converge.sh [--services N] [--pool CIDR]
# Env:   PROFILE=release|dev (default release)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

profile="${PROFILE:-release}"
dir="$profile"; [[ "$profile" == dev ]] && dir=debug
cargo build --profile "$profile" -p ferrolb --bin ferrolb
cargo build --profile "$profile" -p ferrolb-controller --example converge_bench
exec "target/$dir/examples/converge_bench" --ferrolb "target/$dir/ferrolb" "$@"
