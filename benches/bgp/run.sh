#!/usr/bin/env bash
# BGP speaker benchmark (docs/benchmarks-bgp.md): MetalLB's native speaker
# and `ferrolb speaker` in turn, in the same run, against a fresh FRR bgpd
# each, with the same cluster objects:
#   - seconds from the speaker's start to Established, and to a router RIB
#     holding all N Service prefixes (N = 1,000 and 10,000 by default);
#   - the speaker's CPU time (utime+stime) and peak RSS (VmHWM);
#   - from a new Service's creation to its /32 in the router's RIB, with
#     the status written by the driver (the speaker alone) and with the
#     project's own controller assigning the address;
#   - the ratios ferrolb / MetalLB.
#
# The driver is crates/ferrolb/examples/bgp_bench.rs (its header says what
# the cluster holds and how each figure is taken). No controller runs: the
# driver writes the Services' status.
#
# Usage: benches/bgp/run.sh [FERROLB_BINARY]
#   default binary: target/release/ferrolb, built with cargo.
# Environment: KINDS (metallb,ferrolb), SIZES (1000,10000), SAMPLES (5), QUIET_MAX (120),
# PREFIX (network namespace prefix, default bb), OUT (results directory,
# default ${TMPDIR:-/tmp}/ferrolb-bench-bgp/<time>), METALLB_SPEAKER (skip
# benches/metallb/build.sh; METALLB_CONTROLLER defaults to the controller
# beside it), CARGO_TARGET_DIR (as cargo reads it).
# Needs root, iproute2, FRR (/usr/lib/frr/bgpd), Go (for the fixture and
# MetalLB's speaker).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
binary="${1:-}"
target="${CARGO_TARGET_DIR:-$root/target}"
KINDS="${KINDS:-metallb,ferrolb}"

[[ "$(id -u)" == 0 ]] || { echo "run.sh: needs root (network namespaces)" >&2; exit 1; }
command -v ip >/dev/null || { echo "run.sh: ip (iproute2) not found" >&2; exit 1; }
[[ -x /usr/lib/frr/bgpd ]] || { echo "run.sh: /usr/lib/frr/bgpd not found (apt-get install frr)" >&2; exit 1; }

out="${OUT:-${TMPDIR:-/tmp}/ferrolb-bench-bgp/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"

ferrolb=""
if [[ ",$KINDS," == *,ferrolb,* ]]; then
    if [[ -z "$binary" ]]; then
        (cd "$root" && cargo build --release -p ferrolb >&2)
        binary="$target/release/ferrolb"
    fi
    [[ -x "$binary" ]] || { echo "run.sh: binary '$binary' not found" >&2; exit 1; }
    # A copy: target/ may be shared with builds that replace the file.
    cp "$binary" "$out/ferrolb"
    ferrolb="$out/ferrolb"
fi

metallb="" metallb_controller="" manifest="" metallb_version=""
if [[ ",$KINDS," == *,metallb,* ]]; then
    metallb="${METALLB_SPEAKER:-}"
    if [[ -z "$metallb" ]]; then
        built="$(bash "$root/benches/metallb/build.sh")"
        metallb="$(sed -n 's/^metallb-speaker=//p' <<<"$built")"
        metallb_controller="$(sed -n 's/^metallb-controller=//p' <<<"$built")"
        metallb_version="$(sed -n 's/^metallb-version=//p' <<<"$built")"
    fi
    [[ -x "$metallb" ]] || { echo "run.sh: MetalLB speaker '$metallb' not found" >&2; exit 1; }
    # The latency samples with allocation run the controller beside it.
    metallb_controller="${METALLB_CONTROLLER:-${metallb_controller:-$(dirname "$metallb")/controller}}"
    [[ -x "$metallb_controller" ]] || { echo "run.sh: MetalLB controller '$metallb_controller' not found" >&2; exit 1; }
    # The speaker's RBAC as MetalLB ships it, from the same release.
    manifest="$(METALLB_VERSION="${metallb_version:-${METALLB_VERSION:-v0.16.2}}" bash "$root/benches/metallb/manifest.sh" | sed -n 's/^metallb-native=//p')"
    [[ -f "$manifest" ]] || { echo "run.sh: MetalLB's manifest not found" >&2; exit 1; }
fi

if [[ -z "${FERROLB_KUBE_FIXTURE:-}" ]]; then
    FERROLB_KUBE_FIXTURE="$(bash "$root/tests/kube-fixture/build.sh" | tail -n 1)"
    export FERROLB_KUBE_FIXTURE
fi

(cd "$root" && cargo build -p ferrolb --example bgp_bench >&2)
cp "$target/debug/examples/bgp_bench" "$out/driver"

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # The repository at run time; the binary may come from elsewhere.
    echo "repo_head=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "kernel=$(uname -r)"
    echo "cpus=$(nproc)"
    echo "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "frr=$(/usr/lib/frr/bgpd --version 2>/dev/null | head -n 1)"
    if [[ -n "$ferrolb" ]]; then echo "ferrolb_bytes=$(stat -c %s "$ferrolb")"; fi
    if [[ -n "$metallb" ]]; then echo "metallb_speaker=$metallb"; echo "metallb_version=${metallb_version:-unknown}"; fi
} | tee "$out/summary.txt"
echo "run.sh: results in $out" >&2
FERROLB="$ferrolb" METALLB_SPEAKER="$metallb" METALLB_CONTROLLER="$metallb_controller" METALLB_MANIFEST="$manifest" KINDS="$KINDS" OUT="$out" \
    "$out/driver" | tee -a "$out/summary.txt"
