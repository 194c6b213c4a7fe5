#!/usr/bin/env bash
# Convergence benchmark of the controller on the real API server fixture:
# creates $N (default 5000) LoadBalancer Services, starts the controller,
# and prints the seconds until every Service has its address, the seconds
# until the controller is idle, its peak RSS, CPU time and API requests per
# Service (counted by the API server).
#
# Usage: benches/controller/converge.sh [--services N] [--pool CIDR] [--etcd-fsync] [--controller-arg=FLAG ...]
#        [--react-samples K] [--log-level LEVEL] [--controller-log FILE]
# --react-samples K: once idle, K times one new Service and the milliseconds
# from its create until a watch delivers its address (the controller's
# reaction to one change while N Services exist).
# The controller runs as metallb-system/controller under deploy/'s RBAC
# (impersonated): RBAC and API Priority and Fairness apply as in a cluster.
# Env:   PROFILE=release|dev (default release)
#
# The side-by-side run with MetalLB's controller: benches/metallb/compare.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

profile="${PROFILE:-release}"
dir="$profile"; [[ "$profile" == dev ]] && dir=debug
cargo build --profile "$profile" -p ferrolb --bin ferrolb
cargo build --profile "$profile" -p ferrolb-controller --example converge_bench

exec "target/$dir/examples/converge_bench" --ferrolb "target/$dir/ferrolb" "$@"
