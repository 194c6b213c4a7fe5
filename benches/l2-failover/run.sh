#!/usr/bin/env bash
# Layer 2 failover: how long after the announcing node's speaker dies does
# another node answer ARP for the Service address?
#
# Three node network namespaces and a router on one bridge, the real API
# server fixture (tests/kube-fixture) relayed into each node, one speaker per
# node run as the `speaker` ServiceAccount with deploy/'s RBAC. Each run
# SIGKILLs the speaker of the node answering ARP for 198.51.100.200 and
# times the first ARP answer (reply or gratuitous) from another node, with a
# request every 20 ms from the router. The killed speaker is restarted and
# the speakers settle (one owner for STABLE_SECS) before the next run.
# Details: docs/testing-netns.md.
#
# Usage: benches/l2-failover/run.sh [metallb|ferrolb] [SPEAKER_BINARY]
#   metallb (default): MetalLB's speaker, built by benches/metallb/build.sh
#                      unless a binary is given.
#   ferrolb:           `SPEAKER_BINARY speaker <flags>`; default
#                      target/release/ferrolb, built with cargo.
# Environment: RUNS (default 20), STABLE_SECS (5), SPEAKER_ARGS (extra flags),
# PREFIX (network namespace prefix, default l2f), OUT (results directory,
# default ${TMPDIR:-/tmp}/ferrolb-bench-l2-failover/<impl>-<time>).
# Needs root, iproute2, arping, Go (for the fixture and MetalLB).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
impl="${1:-${IMPL:-metallb}}"
speaker="${2:-${SPEAKER:-}}"

[[ "$(id -u)" == 0 ]] || { echo "run.sh: needs root (network namespaces)" >&2; exit 1; }
for tool in ip arping; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (scripts/test.sh installs it)" >&2; exit 1; }
done

case "$impl" in
    metallb)
        if [[ -z "$speaker" ]]; then
            speaker="$(bash "$root/benches/metallb/build.sh" | sed -n 's/^metallb-speaker=//p')"
        fi ;;
    ferrolb)
        if [[ -z "$speaker" ]]; then
            (cd "$root" && cargo build --release -p ferrolb >&2)
            speaker="$root/target/release/ferrolb"
        fi ;;
    *) echo "run.sh: implementation must be metallb or ferrolb, not '$impl'" >&2; exit 2 ;;
esac
[[ -x "$speaker" ]] || { echo "run.sh: speaker binary '$speaker' not found" >&2; exit 1; }

out="${OUT:-${TMPDIR:-/tmp}/ferrolb-bench-l2-failover/$impl-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"

# The fixture binary once, so the driver does not build it.
if [[ -z "${FERROLB_KUBE_FIXTURE:-}" ]]; then
    FERROLB_KUBE_FIXTURE="$(bash "$root/tests/kube-fixture/build.sh" | tail -n 1)"
    export FERROLB_KUBE_FIXTURE
fi

(cd "$root" && cargo build -p ferrolb-test-harness --example l2-failover >&2)
driver="$root/target/debug/examples/l2-failover"
# A copy: target/ is shared with other builds that may replace the file.
cp "$driver" "$out/driver"

echo "run.sh: $impl speaker $speaker; results in $out" >&2
IMPL="$impl" SPEAKER="$speaker" OUT="$out" "$out/driver" | tee "$out/summary.txt"
