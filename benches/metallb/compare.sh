#!/usr/bin/env bash
# Runs benches/metallb/converge.sh for MetalLB's controller and for ferrolb's,
# alternating, RUNS times each, and prints both sets of figures (median over
# the runs) and their ratios (MetalLB / ferrolb: above 1 means ferrolb is
# better, i.e. faster, smaller or fewer requests).
#
# Usage: benches/metallb/compare.sh [METALLB_BINARY [FERROLB_BINARY]]
# Environment: RUNS (default 1), and everything converge.sh reads (N, MODE, QUIET,
# PARALLEL, TIMEOUT, IDENTITY (default sa: each controller as its own
# ServiceAccount under its own RBAC), ETCD_FSYNC=1, ...). Results go to
# ${TMPDIR:-/tmp}/ferrolb-bench-metallb/compare-<time>/ (one dir per run and
# summary.txt).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNS="${RUNS:-1}"
metallb_bin="${1:-}"
ferrolb_bin="${2:-}"
out="${TMPDIR:-/tmp}/ferrolb-bench-metallb/compare-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

# Fix both binaries for all runs: target/ is shared with other builds.
if [[ -z "$metallb_bin" ]]; then
    metallb_bin="$(bash "$here/build.sh" | sed -n 's/^metallb-controller=//p')"
fi
if [[ -z "$ferrolb_bin" ]]; then
    root="$(cd "$here/../.." && pwd)"
    (cd "$root" && cargo build --release -p ferrolb >&2)
    ferrolb_bin="$root/target/release/ferrolb"
fi
cp "$ferrolb_bin" "$out/ferrolb"
ferrolb_bin="$out/ferrolb"

echo "compare.sh: MetalLB $metallb_bin, ferrolb $ferrolb_bin (copy)" >&2
for i in $(seq 1 "$RUNS"); do
    for kind in metallb ferrolb; do
        b="$metallb_bin"; [[ "$kind" == ferrolb ]] && b="$ferrolb_bin"
        echo "compare.sh: run $i/$RUNS: $kind" >&2
        RESULTS_DIR="$out/$kind-$i" bash "$here/converge.sh" "$kind" "$b" \
            | tee "$out/$kind-$i.txt" >&2 \
            || { echo "compare.sh: $kind run $i failed" >&2; exit 1; }
    done
done

python3 - "$out" "$RUNS" <<'EOF' | tee "$out/summary.txt"
import statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])

def load(kind, i):
    d = {}
    for line in open(f"{out}/{kind}-{i}/result.env"):
        k, _, v = line.rstrip("\n").partition("=")
        d[k] = v.strip('"')
    return d

res = {k: [load(k, i) for i in range(1, runs + 1)] for k in ("metallb", "ferrolb")}

def med(kind, key):
    return statistics.median(float(r[key]) for r in res[kind])

rows = [
    ("seconds until every Service has an IP", "converge_seconds", 1, "{:.2f}"),
    ("seconds until the first IP", "first_ip_seconds", 1, "{:.2f}"),
    ("seconds from the last create to all IPs (mode live)", "after_last_create_seconds", 1, "{:.2f}"),
    ("peak RSS, MiB (VmHWM)", "peak_rss_kib", 1024, "{:.1f}"),
    ("CPU seconds until convergence", "cpu_seconds_at_converge", 1, "{:.2f}"),
    ("API requests per Service until convergence", "requests_per_service_converge", 1, "{:.3f}"),
    ("seconds until the last request (Leases aside)", "last_request_seconds", 1, "{:.2f}"),
    ("API requests per Service until quiet", "requests_per_service_total", 1, "{:.3f}"),
    ("CPU seconds until quiet", "cpu_seconds", 1, "{:.2f}"),
    ("apiserver+etcd CPU seconds until convergence", "server_cpu_seconds_at_converge", 1, "{:.2f}"),
    ("Service status writes in flight, most", "status_writes_in_flight_max", 1, "{:.0f}"),
    ("Service status writes in flight, mean while any", "status_writes_in_flight_mean", 1, "{:.1f}"),
    ("status write latency p50, ms (server side)", "status_write_ms_p50", 1, "{:.1f}"),
    ("APF mean queue wait at workload-low, ms", "apf_workload_low_wait_ms_mean", 1, "{:.2f}"),
]
m, f = res["metallb"][0], res["ferrolb"][0]
print(f"N={m['n']} Services, mode {m['mode']}, {runs} run(s) each, median; quiet = {m['quiet_seconds']} s without a request")
print(f"identity: {m.get('identity', 'admin')} (ServiceAccounts under their own RBAC: sa), etcd fsync: {'on' if m.get('etcd_fsync') == '1' else 'off'}")
print("load average at start/end per run: " + "; ".join(f"{k} {r['loadavg_at_start']} / {r.get('loadavg_at_end', '?')}" for k in ("metallb", "ferrolb") for r in res[k]))
print(f"MetalLB: {m['version']} (sha256 {m['binary_sha256_prefix']}...)")
print(f"ferrolb: {f['version']} (sha256 {f['binary_sha256_prefix']}...)")
print()
w = max(len(r[0]) for r in rows)
print(f"{'':{w}}  {'MetalLB':>10}  {'ferrolb':>10}  {'MetalLB/ferrolb':>15}")
for label, key, div, fmt in rows:
    if key == "after_last_create_seconds" and m.get("mode") != "live":
        continue
    a, b = med("metallb", key) / div, med("ferrolb", key) / div
    # A lag of ~0 (or below: the watcher saw the IP before kubectl exited)
    # has no meaningful ratio.
    ratio = f"{a / b:.2f}x" if a > 0 and b > 0.05 else "-"
    print(f"{label:{w}}  {fmt.format(a):>10}  {fmt.format(b):>10}  {ratio:>15}")
if runs > 1:
    print()
    for kind in ("metallb", "ferrolb"):
        print(kind, "converge_seconds per run:", " ".join(r["converge_seconds"] for r in res[kind]),
              "| peak RSS MiB:", " ".join(f"{float(r['peak_rss_kib'])/1024:.1f}" for r in res[kind]))
print()
print(f"details: {out}")
EOF
