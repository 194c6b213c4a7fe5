#!/usr/bin/env bash
# Whole-process benchmark of `ferrolb plan`: wall time and peak memory over
# 10,000 Services and 100 pools (override with SERVICES / POOLS / RUNS).
set -euo pipefail
cd "$(dirname "$0")/../.."
services=${SERVICES:-10000}
pools=${POOLS:-100}
runs=${RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p ferrolb
bin=target/release/ferrolb
python3 benches/plan/generate.py "$pools" "$services" "$work/input.yaml"
printf 'input: %s pools, %s services, %s bytes\n' "$pools" "$services" "$(stat -c %s "$work/input.yaml")"

best=""
for i in $(seq "$runs"); do
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin" plan -o json -f "$work/input.yaml" > "$work/plan.json"
  read -r secs kib < "$work/time"
  printf 'run %d: %.3f s, peak RSS %.1f MiB\n' "$i" "$secs" "$(awk -v k="$kib" 'BEGIN{print k/1024}')"
  best=$(printf '%s\n%s\n' "$best" "$secs" | grep -v '^$' | sort -n | head -1)
done
python3 - "$work/plan.json" <<'PY'
import json, sys, collections
plan = json.load(open(sys.argv[1]))
c = collections.Counter(s["status"] for s in plan["services"])
print("outcome:", dict(c))
PY
echo "best wall time: $best s"
