#!/usr/bin/env bash
# Runs a kube-fixture by hand (benchmarks, trying the controller against a real
# apiserver). Builds it if needed, prints the kubeconfig path once the
# apiserver is ready, and keeps running until Ctrl-C or SIGTERM, which stops
# the fixture and removes its data.
#
# Extra arguments go to kube-fixture, e.g. --secure-port=6443 or
# --keep-data-dir; see `kube-fixture -h`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fixture="$(bash "$here/build.sh")"
kubectl="$(dirname "$fixture")/kubectl"

data_dir="$(mktemp -d "${TMPDIR:-/tmp}/kube-fixture-run.XXXXXX")"
# Output lives outside the data dir, which the fixture deletes on exit, so a
# failed start can still be read.
log="$data_dir.log"
out="$data_dir.out"
echo "run.sh: apiserver/etcd log: $log" >&2

"$fixture" --data-dir="$data_dir" "$@" >"$out" 2>"$log" &
pid=$!
# Forward the stop to the fixture itself: a signal sent to this script alone
# (e.g. by `timeout` or a supervisor) would otherwise leave it running.
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM

ready=""
while kill -0 "$pid" 2>/dev/null; do
    if grep -q '^kube-fixture ready ' "$out"; then
        ready=1
        cat "$out"
        echo "KUBECONFIG=$data_dir/kubeconfig"
        echo "kubectl=$kubectl"
        echo "try: KUBECONFIG=$data_dir/kubeconfig $kubectl get --raw /readyz"
        break
    fi
    sleep 0.2
done

status=0
wait "$pid" || status=$?
# A second wait: the first returns early when a trapped signal arrives.
wait "$pid" 2>/dev/null || true
if [[ -z "$ready" || ( $status -ne 0 && $status -ne 143 ) ]]; then
    echo "run.sh: kube-fixture exited with status $status; last log lines:" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
fi
rm -f "$log" "$out"
