#!/usr/bin/env bash
# Speaker benchmarks, layer 2 (docs/benchmarks-speaker.md):
#   1. peak RSS (VmHWM) of `ferrolb speaker` with 1,000 LoadBalancer Services
#      and 10,000 EndpointSlices, and the time from its start until it
#      announces all 1,000 addresses;
#   2. ARP reply latency, share answered and the speaker's CPU at 10,000
#      requests per second for random announced addresses.
#
# A router and one node network namespace on a bridge, the real API server
# fixture (tests/kube-fixture) relayed into the node, and one speaker in the
# node (failure detector on) run as the `speaker` ServiceAccount with
# deploy/'s RBAC. The driver is crates/ferrolb/examples/speaker_bench.rs.
#
# Usage: benches/speaker/run.sh [FERROLB_BINARY]
#   default binary: target/release/ferrolb, built with cargo.
# Environment: SERVICES (1000), SLICES per Service (10), ENDPOINTS per slice
# (3), NODES (10 Node objects), RATE (10000 ARP requests/s), SECONDS (15; 0
# skips the ARP figure), PREFIX (network namespace prefix, default sb),
# OUT (results directory, default ${TMPDIR:-/tmp}/ferrolb-bench-speaker/<time>),
# HEAPTRACK=1 runs the speaker under heaptrack (its RSS is then not the
# speaker's alone; for finding where memory goes, not for the figure).
# Needs root, iproute2, Go (for the fixture).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
binary="${1:-}"

[[ "$(id -u)" == 0 ]] || { echo "run.sh: needs root (network namespaces)" >&2; exit 1; }
command -v ip >/dev/null || { echo "run.sh: ip (iproute2) not found" >&2; exit 1; }

if [[ -z "$binary" ]]; then
    (cd "$root" && cargo build --release -p ferrolb >&2)
    binary="$root/target/release/ferrolb"
fi
[[ -x "$binary" ]] || { echo "run.sh: binary '$binary' not found" >&2; exit 1; }

out="${OUT:-${TMPDIR:-/tmp}/ferrolb-bench-speaker/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
# Copies: target/ is shared with other builds that may replace the files.
cp "$binary" "$out/ferrolb"
speaker="$out/ferrolb"
if [[ "${HEAPTRACK:-}" == 1 ]]; then
    command -v heaptrack >/dev/null || { echo "run.sh: heaptrack not found (apt-get install heaptrack)" >&2; exit 1; }
    # The driver runs `<SPEAKER> speaker <flags>`; heaptrack writes its
    # profile next to the results.
    cat >"$out/ferrolb-heaptrack" <<EOF
#!/bin/sh
exec heaptrack -o "$out/heaptrack.speaker" "$speaker" "\$@"
EOF
    chmod +x "$out/ferrolb-heaptrack"
    speaker="$out/ferrolb-heaptrack"
    export SPEAKER_EXE="$out/ferrolb"
fi

if [[ -z "${FERROLB_KUBE_FIXTURE:-}" ]]; then
    FERROLB_KUBE_FIXTURE="$(bash "$root/tests/kube-fixture/build.sh" | tail -n 1)"
    export FERROLB_KUBE_FIXTURE
fi

(cd "$root" && cargo build -p ferrolb --example speaker_bench >&2)
cp "$root/target/debug/examples/speaker_bench" "$out/driver"

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # The repository at run time; the binary may come from elsewhere.
    echo "repo_head=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "kernel=$(uname -r)"
    echo "cpus=$(nproc)"
    echo "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "binary_bytes=$(stat -c %s "$out/ferrolb")"
} | tee "$out/summary.txt"
echo "run.sh: results in $out" >&2
SPEAKER="$speaker" OUT="$out" "$out/driver" | tee -a "$out/summary.txt"
