#!/usr/bin/env bash
# Runs a kube-fixture by hand (benchmarks, trying the controller against a real
# apiserver). Builds it if needed, prints the kubeconfig path once the
# apiserver is ready, and keeps running until Ctrl-C, which removes its data.
#
# Extra arguments go to kube-fixture, e.g. --secure-port=6443 or
# --keep-data-dir; see `kube-fixture -h`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bins="$(bash "$here/build.sh")"
fixture="$(sed -n 's/^kube-fixture=//p' <<<"$bins")"
kubectl="$(sed -n 's/^kubectl=//p' <<<"$bins")"

data_dir="$(mktemp -d "${TMPDIR:-/tmp}/kube-fixture-run.XXXXXX")"
# The log lives outside the data dir, which the fixture deletes on exit, so
# that a failed start can still be read.
log="$data_dir.log"
echo "run.sh: apiserver/etcd log: $log" >&2

status=0
"$fixture" --data-dir="$data_dir" "$@" 2>"$log" | while IFS= read -r line; do
    echo "$line"
    if [[ "$line" == "kube-fixture ready "* ]]; then
        echo "KUBECONFIG=$data_dir/kubeconfig"
        echo "kubectl=$kubectl"
        echo "try: KUBECONFIG=$data_dir/kubeconfig $kubectl get --raw /readyz"
    fi
done || status=$?
if [[ $status -ne 0 ]]; then
    echo "run.sh: kube-fixture exited with status $status; last log lines:" >&2
    tail -n 30 "$log" >&2 || true
    exit "$status"
fi
rm -f "$log"
