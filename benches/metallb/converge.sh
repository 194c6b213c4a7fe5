#!/usr/bin/env bash
# Convergence bench of one controller against the kube fixture:
# N LoadBalancer Services are created in a burst, then the controller starts,
# and we measure how long until every Service has status.loadBalancer.ingress,
# the controller's peak RSS and CPU time, and the API requests it made.
#
# Usage:
#   benches/metallb/converge.sh metallb [CONTROLLER_BINARY]
#       MetalLB's controller (default: what benches/metallb/build.sh builds)
#   benches/metallb/converge.sh ferrolb [FERROLB_BINARY]
#       `ferrolb controller` (default: target/release/ferrolb, built with
#       `cargo build --release -p ferrolb` when missing)
#
# Environment:
#   N             Services to create (default 5000)
#   MODE          backlog (default): create the Services, then start the
#                 controller; the clock starts with the controller.
#                 live: start the controller, wait 5 s, then create the
#                 Services while it runs; the clock starts with the first
#                 create, and the lag after the last create is reported too.
#   PARALLEL      kubectl processes creating them (default 4)
#   QUIET         after convergence the controller keeps running until it has
#                 made no request (Lease renewals aside) for QUIET seconds, to
#                 count trailing writes (events, pool status) (default 5)
#   QUIET_MAX     ... but for at most this many seconds (default 300)
#   TIMEOUT       seconds to wait for convergence (default 1200)
#   RESULTS_FILE  where to write the figures as key=value lines
#                 (default: <results dir>/result.env)
#   RESULTS_DIR   where result.env, requests.txt and the controller log go
#                 (default: ${TMPDIR:-/tmp}/ferrolb-bench-metallb/<kind>-<time>)
#   KEEP_WORK=1   keep the work dir (fixture data, audit log) for a post-mortem
#   AUDIT_POLICY  an audit policy file instead of the default (e.g. level
#                 Request for some resources, to see what is written); it must
#                 still log each request once, at stage ResponseComplete
#   IDENTITY      sa (default): the controller runs as the ServiceAccount
#                 metallb-system/controller, impersonated through the admin
#                 kubeconfig, bound to its own project's RBAC as shipped
#                 (ferrolb: deploy/manifests; MetalLB: the controller's
#                 bindings in its release's config/manifests/metallb-native.yaml,
#                 via manifest.sh), so RBAC and API Priority and Fairness
#                 apply as in a cluster (system:masters is exempt from APF).
#                 admin: the fixture's admin credentials (earlier runs).
#   ETCD_FSYNC=1  etcd fsyncs as a production member does (the fixture's
#                 default is no fsync)
#   EXTRA_ARGS    more arguments for the controller
#   CONTROLLER_ENV  space-separated VAR=value for the controller's environment
#                 (e.g. GOGC=50, MALLOC_ARENA_MAX=2), for experiments
#
# Both controllers get the same fixture, CRDs (deploy/crds/metallb.io.yaml),
# objects and flags that mean the same thing: namespace metallb-system, a fake
# Pod of their own (no kubelet: it stays Pending), webhooks off, no memberlist
# secret, metrics and health endpoints on free ports, log level info.
#
# Requests are counted on the apiserver side, from an audit log (every request
# once, level Metadata): everything not made by the apiserver itself, kubectl
# (the setup) or the bench's watcher is the controller's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

kind="${1:-}"
case "$kind" in
    metallb|ferrolb) ;;
    *) echo "usage: $0 metallb|ferrolb [BINARY]" >&2; exit 2 ;;
esac
bin="${2:-}"

N="${N:-5000}"
IDENTITY="${IDENTITY:-sa}"
case "$IDENTITY" in sa|admin) ;; *) echo "IDENTITY must be sa or admin" >&2; exit 2 ;; esac
ETCD_FSYNC="${ETCD_FSYNC:-0}"
MODE="${MODE:-backlog}"
case "$MODE" in backlog|live) ;; *) echo "MODE must be backlog or live" >&2; exit 2 ;; esac
PARALLEL="${PARALLEL:-4}"
(( PARALLEL > N )) && PARALLEL=$N
(( PARALLEL >= 1 )) || PARALLEL=1
QUIET="${QUIET:-5}"
QUIET_MAX="${QUIET_MAX:-300}"
TIMEOUT="${TIMEOUT:-1200}"
ns_lb=metallb-system
ns_svc=bench
pod=controller-bench

log() { echo "converge.sh: $*" >&2; }

# --- binaries --------------------------------------------------------------
version=""
if [[ "$kind" == metallb ]]; then
    if [[ -z "$bin" ]]; then
        built="$(bash "$here/build.sh")"
        bin="$(sed -n 's/^metallb-controller=//p' <<<"$built")"
        version="$(sed -n 's/^metallb-version=//p' <<<"$built")"
    fi
    [[ -n "$version" ]] || version="$(basename "$(dirname "$bin")")"; version="${version#metallb-}"
else
    if [[ -z "$bin" ]]; then
        bin="$root/target/release/ferrolb"
        if [[ ! -x "$bin" ]]; then
            log "building ferrolb (cargo build --release -p ferrolb)"
            (cd "$root" && cargo build --release -p ferrolb >&2)
        fi
    fi
    # The work tree may hold others' uncommitted changes: "-dirty" says the
    # binary need not be exactly this commit; bin_sha identifies it.
    version="ferrolb $(cd "$root" && git describe --always --dirty 2>/dev/null || echo '?')"
fi
[[ -x "$bin" ]] || { log "controller binary '$bin' not found"; exit 1; }
bin_sha="$(sha256sum "$bin" | cut -c1-12)"

if [[ -n "${FERROLB_KUBE_FIXTURE_BIN:-}" ]]; then
    fixture="$FERROLB_KUBE_FIXTURE_BIN"
else
    # build.sh has printed either `kube-fixture=<path>` lines or the bare path.
    fixture="$(bash "$root/tests/kube-fixture/build.sh" | grep -m1 -E '(^|=)/.*kube-fixture$' | sed 's/^kube-fixture=//')"
fi
kubectl_bin="$(dirname "$fixture")/kubectl"
[[ -x "$fixture" && -x "$kubectl_bin" ]] || { log "kube-fixture not found ($fixture)"; exit 1; }

# --- work dir, cleanup ------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/ferrolb-bench-metallb.XXXXXX")"
stamp="$(date +%Y%m%d-%H%M%S)"
RESULTS_DIR="${RESULTS_DIR:-${TMPDIR:-/tmp}/ferrolb-bench-metallb/$kind-$stamp}"
mkdir -p "$RESULTS_DIR"
RESULTS_FILE="${RESULTS_FILE:-$RESULTS_DIR/result.env}"
fixture_pid="" ctrl_pid="" watch_pid=""
cleanup() {
    local rc=$?
    # The controller leads its own process group (setsid): a wrapper such as
    # heaptrack and its child go together.
    [[ -n "$ctrl_pid" ]] && { kill -TERM -- "-$ctrl_pid" 2>/dev/null || true; }
    for p in $watch_pid; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $ctrl_pid $watch_pid; do wait "$p" 2>/dev/null || true; done
    if [[ -n "$fixture_pid" ]]; then
        kill -TERM "$fixture_pid" 2>/dev/null || true
        wait "$fixture_pid" 2>/dev/null || true
    fi
    exec 8>&- 2>/dev/null || true
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then log "work dir kept: $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export KUBECONFIG="$work/data/kubeconfig"
export KUBECACHEDIR="$work/kube-cache"
kc() { "$kubectl_bin" --cache-dir="$KUBECACHEDIR" "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- fixture, with an audit log ---------------------------------------------
if [[ -n "${AUDIT_POLICY:-}" ]]; then
    cp "$AUDIT_POLICY" "$work/audit-policy.yaml"
else
    cat >"$work/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
EOF
fi
mkfifo "$work/stdin"
# The fixture exits (and cleans up) when this script dies, whatever kills it:
# fd 8 is the only writer of its stdin. Children get `8>&-`.
exec 8<>"$work/stdin"
fsync_flag=()
[[ "$ETCD_FSYNC" == 1 ]] && fsync_flag=(--etcd-fsync)
log "starting kube-fixture ($fixture${fsync_flag:+ ${fsync_flag[*]}})"
"$fixture" --data-dir="$work/data" --exit-on-stdin-eof "${fsync_flag[@]}" -- \
    --audit-policy-file="$work/audit-policy.yaml" --audit-log-path="$work/audit.log" \
    --audit-log-maxsize=0 \
    <"$work/stdin" >"$work/fixture.out" 2>"$work/fixture.log" &
fixture_pid=$!
for _ in $(seq 1 600); do
    grep -q '^kube-fixture ready ' "$work/fixture.out" 2>/dev/null && break
    kill -0 "$fixture_pid" 2>/dev/null || { tail -30 "$work/fixture.log" >&2; log "fixture died"; exit 1; }
    sleep 0.2
done
grep -q '^kube-fixture ready ' "$work/fixture.out" || { log "fixture not ready after 120 s"; exit 1; }
# Until the default ServiceCIDR is Ready, clusterIP allocation may fail.
kc wait --for=condition=Ready servicecidr/kubernetes --timeout=60s >/dev/null

# --- CRDs and MetalLB objects ----------------------------------------------
kc apply --server-side -f "$root/deploy/crds/metallb.io.yaml" >/dev/null
kc wait --for=condition=Established crd --all --timeout=60s >/dev/null
cat >"$work/setup.yaml" <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $ns_lb}
---
apiVersion: v1
kind: Namespace
metadata: {name: $ns_svc}
---
# The controller reads its own Pod at startup (owner of its
# ConfigurationState). Nothing runs it: no scheduler, no kubelet.
apiVersion: v1
kind: Pod
metadata:
  name: $pod
  namespace: $ns_lb
  labels: {app: metallb, component: controller}
spec:
  containers:
    - name: controller
      image: bench.invalid/controller:none
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench, namespace: $ns_lb}
spec:
  addresses: [10.0.0.0/16]
EOF
# Discovery of the new CRDs may lag a moment behind Established.
for i in $(seq 1 50); do
    kc apply --server-side -f "$work/setup.yaml" >/dev/null 2>"$work/setup.err" && break
    [[ $i == 50 ]] && { cat "$work/setup.err" >&2; exit 1; }
    sleep 0.2
done

# --- the controller's identity ----------------------------------------------
# As deployed: its own ServiceAccount under its own project's RBAC, through
# impersonation (the fixture issues no ServiceAccount tokens). Both client-go
# and kube-rs honour a kubeconfig user's `as` / `as-groups`.
ctrl_kubeconfig="$KUBECONFIG"
if [[ "$IDENTITY" == sa ]]; then
    if [[ "$kind" == ferrolb ]]; then
        for f in serviceaccounts rbac-controller; do
            kc apply --server-side -f "$root/deploy/manifests/$f.yaml" >/dev/null
        done
    else
        native="$(bash "$here/manifest.sh" | sed -n 's/^metallb-native=//p')"
        [[ -f "$native" ]] || { log "MetalLB's manifest not found"; exit 1; }
        # The controller's ServiceAccount and every Role/ClusterRole bound to
        # it, with their bindings, exactly as released.
        python3 - "$native" >"$work/metallb-rbac.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
sa = lambda s: s.get("kind") == "ServiceAccount" and s.get("name") == "controller" and s.get("namespace") == "metallb-system"
bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding") and any(sa(s) for s in d.get("subjects", []))]
roles = [d for d in docs if (d["kind"], d["metadata"]["name"]) in {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings}]
account = [d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "controller"]
assert bindings and len(roles) == len(bindings) and account, "metallb-native.yaml: controller RBAC not found"
yaml.safe_dump_all(account + roles + bindings, sys.stdout)
PY
        kc apply --server-side -f "$work/metallb-rbac.yaml" >/dev/null
    fi
    ctrl_kubeconfig="$work/controller.kubeconfig"
    sa=system:serviceaccount:$ns_lb:controller
    # The fixture's kubeconfig has one user, whose only field is the token.
    sed "s/^\(    token: .*\)$/\1\n    as: $sa\n    as-groups: [system:serviceaccounts, system:serviceaccounts:$ns_lb, system:authenticated]/" \
        "$KUBECONFIG" >"$ctrl_kubeconfig"
    grep -q "^    as: $sa\$" "$ctrl_kubeconfig" || { log "could not write the impersonating kubeconfig"; exit 1; }
    chmod 600 "$ctrl_kubeconfig"
fi

# The apiserver creates a CRD's storage (and starts filling its watch cache)
# on the first request for it; until the cache is filled a LIST gets 429 with
# Retry-After: 1. A cluster that has been up a while has touched them all
# long ago, so touch them all now, or the controller's first list of a
# resource nobody used yet (Community, ConfigurationState, ...) costs it a
# retry and a second of backoff.
resources=$(kc api-resources --api-group=metallb.io -o name | paste -sd, -)
for i in $(seq 1 50); do
    kc get "$resources" -A >/dev/null 2>"$work/warm.err" && break
    [[ $i == 50 ]] && { cat "$work/warm.err" >&2; exit 1; }
    sleep 0.2
done

# --- the burst of Services --------------------------------------------------
python3 - "$N" "$PARALLEL" "$ns_svc" "$work" <<'EOF'
import sys
n, parts, ns, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
files = [open(f"{work}/services-{p}.yaml", "w") for p in range(parts)]
for i in range(n):
    files[i % parts].write(f"""---
apiVersion: v1
kind: Service
metadata:
  name: svc-{i:05d}
  namespace: {ns}
spec:
  type: LoadBalancer
  # 5000 Services would exhaust the 2768 node ports of the default range;
  # node ports mean nothing to either controller.
  allocateLoadBalancerNodePorts: false
  selector: {{app: svc-{i:05d}}}
  ports:
    - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}
""")
for f in files:
    f.close()
EOF
create_services() {
    log "creating $N LoadBalancer Services ($PARALLEL kubectl create in parallel)"
    c0=$(date +%s.%N)
    local pids=() p
    for p in $(seq 0 $((PARALLEL - 1))); do
        kc create -f "$work/services-$p.yaml" -o name >/dev/null 2>"$work/create-$p.err" 8>&- &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || { cat "$work"/create-*.err >&2; log "creating Services failed"; exit 1; }
    done
    c1=$(date +%s.%N)
    create_s=$(python3 -c "print(f'{$c1 - $c0:.1f}')")
    count=$(kc get services -n "$ns_svc" --no-headers | wc -l)
    [[ "$count" == "$N" ]] || { log "expected $N Services, found $count"; exit 1; }
    log "created $N Services in ${create_s}s"
}

# --- watcher ----------------------------------------------------------------
start_watcher() {
    python3 "$here/watch.py" "$KUBECONFIG" "$ns_svc" "$N" "$kubectl_bin" \
        >"$work/watch.out" 2>"$work/watch.err" 8>&- &
    watch_pid=$!
    for _ in $(seq 1 300); do
        grep -qs '^ready ' "$work/watch.out" && break
        kill -0 "$watch_pid" 2>/dev/null || { cat "$work/watch.err" >&2; exit 1; }
        sleep 0.1
    done
    grep -q '^ready ' "$work/watch.out" || { log "watcher not ready"; exit 1; }
}

# --- the controller ---------------------------------------------------------
metrics_port=$(free_port)
health_port=$(free_port)
if [[ "$kind" == metallb ]]; then
    # controller-runtime reads KUBECONFIG. MetalLB binds its health probe on
    # all interfaces (":<port>"); nothing connects to it. --port serves
    # metrics over HTTPS (as deployed); METALLB_ML_SECRET_NAME unset: no
    # memberlist secret. No leader election exists in MetalLB.
    cmd=("$bin" --namespace="$ns_lb" --pod-name="$pod" --webhook-mode=disabled
         --port="$metrics_port" --health-probe-port="$health_port" --log-level=info)
else
    cmd=("$bin" controller --kubeconfig="$ctrl_kubeconfig" --namespace="$ns_lb" --pod-name="$pod"
         --webhook-mode=disabled --port="$metrics_port" --health-probe-port="$health_port"
         --bind-address=127.0.0.1 --log-level=info)
fi
# shellcheck disable=SC2206
cmd+=(${EXTRA_ARGS:-})
# CPU time of the fixture (supervisor and the apiserver+etcd child it runs):
# how much work the controller's requests cost the server side.
tree_cpu() {
    local hz total=0 p t
    hz=$(getconf CLK_TCK)
    for p in "$fixture_pid" $(pgrep -P "$fixture_pid" || true); do
        t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    python3 -c "print(f'{$total / $hz:.2f}')"
}
start_controller() {
    log "starting: ${cmd[*]}"
    t_ctrl=$(date +%s.%N)
    # shellcheck disable=SC2086
    # setsid (not a group leader here, so it execs in place): $! is the
    # controller itself, leading a process group of its own.
    setsid env -u METALLB_ML_SECRET_NAME -u METALLB_DEPLOYMENT -u METALLB_BGP_TYPE KUBECONFIG="$ctrl_kubeconfig" ${CONTROLLER_ENV:-} \
        "${cmd[@]}" >"$work/controller.log" 2>&1 8>&- &
    ctrl_pid=$!
}

# t0: the moment the clock starts; requests are counted from t_ctrl.
if [[ "$MODE" == backlog ]]; then
    create_services
    start_watcher
    # Let the apiserver finish what the burst left it (quiet machine for t0).
    sleep 3
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    server_cpu0=$(tree_cpu)
    start_controller
    t0=$t_ctrl
else
    start_watcher
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    server_cpu0=$(tree_cpu)
    start_controller
    # Both controllers are ready well within this (MetalLB ~0.3 s, ferrolb
    # ~0.1 s to their first write with a Service present).
    sleep 5
    kill -0 "$ctrl_pid" 2>/dev/null || { tail -30 "$work/controller.log" >&2; log "controller exited"; exit 1; }
    t0=$(date +%s.%N)
    create_services
fi

hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$ctrl_pid/status"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$ctrl_pid/status"; }
# RssAnon (heap, stacks) and RssFile (pages of the binary and libraries) of
# the current RSS, as "anon file" in KiB: which of the two a peak is made of.
rss_parts_kb() { awk '/^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {print a, f}' "/proc/$ctrl_pid/status"; }
cpu_s() {
    # utime + stime (fields 14, 15) of all threads, in clock ticks. The
    # command name (field 2) has no spaces for either binary.
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$ctrl_pid/stat"
}

deadline=$(( $(date +%s) + TIMEOUT ))
while ! grep -q '^done ' "$work/watch.out"; do
    if ! kill -0 "$ctrl_pid" 2>/dev/null; then
        tail -30 "$work/controller.log" >&2; log "controller exited before convergence"; exit 1
    fi
    if ! kill -0 "$watch_pid" 2>/dev/null && ! grep -q '^done ' "$work/watch.out"; then
        cat "$work/watch.err" >&2; log "watcher died"; exit 1
    fi
    if (( $(date +%s) > deadline )); then
        tail -5 "$work/watch.out" >&2; log "no convergence after ${TIMEOUT}s"; exit 1
    fi
    sleep 0.1
done
hwm_done=$(hwm_kb); read -r anon_done file_done <<<"$(rss_parts_kb)"; cpu_done=$(cpu_s); server_cpu_done=$(tree_cpu)
log "all $N Services have an IP; waiting for the controller to go quiet (${QUIET}s without a request)"
kill -TERM "$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; watch_pid=""
quiet_line=$(python3 "$here/requests.py" wait-quiet "$work/audit.log" "$t_ctrl" "$QUIET" "$QUIET_MAX")
kill -0 "$ctrl_pid" 2>/dev/null || { tail -30 "$work/controller.log" >&2; log "controller exited"; exit 1; }
hwm_end=$(hwm_kb); rss_end=$(rss_kb); read -r anon_end file_end <<<"$(rss_parts_kb)"; cpu_end=$(cpu_s); server_cpu_end=$(tree_cpu)
kill -TERM -- "-$ctrl_pid" 2>/dev/null || true; wait "$ctrl_pid" 2>/dev/null || true; ctrl_pid=""
# API Priority and Fairness as the apiserver applied it: requests dispatched
# and rejected per priority level over the whole run (setup included: the
# admin's requests are in "exempt", a ServiceAccount's in "workload-low"),
# and the mean queue wait at workload-low.
eval "$(kc get --raw /metrics | python3 "$here/requests.py" apf)"

done_line=$(grep "^done " "$work/watch.out")
read -r _ t_done distinct _ with_ip <<<"$done_line"
t_first=$(awk '/^first / {print $2}' "$work/watch.out")
t_half=$(awk '/^progress 50 / {print $3}' "$work/watch.out")
eval "$(python3 "$here/requests.py" count "$work/audit.log" "$t_ctrl" "$t_done" "$RESULTS_DIR/requests.txt" | sed 's/^user_agent=\(.*\)$/user_agent="\1"/')"
cp "$work/controller.log" "$RESULTS_DIR/controller.log" 2>/dev/null || true
[[ $(stat -c %s "$RESULTS_DIR/controller.log") -gt 20000000 ]] && : >"$RESULTS_DIR/controller.log.too-big" && rm "$RESULTS_DIR/controller.log"

f() { python3 -c "print(f'{$1:.${2:-2f}}')"; }
converge_s=$(f "$t_done - $t0")
after_create_s=$(f "$t_done - $c1")
first_s=$(f "$t_first - $t0")
half_s=$(f "$t_half - $t0")
per_svc_converge=$(f "$requests_converge / $N" 3f)
per_svc_total=$(f "$requests_total / $N" 3f)
last_s=$(f "$last_request - $t0")
quiet=${quiet_line#quiet=}
cat >"$RESULTS_FILE" <<EOF
kind=$kind
mode=$MODE
version="$version"
binary="$bin"
binary_sha256_prefix=$bin_sha
controller_env="${CONTROLLER_ENV:-}"
extra_args="${EXTRA_ARGS:-}"
n=$N
create_seconds=$create_s
converge_seconds=$converge_s
after_last_create_seconds=$after_create_s
first_ip_seconds=$first_s
half_seconds=$half_s
distinct_ips=$distinct
services_with_ip=$with_ip
peak_rss_kib_at_converge=$hwm_done
peak_rss_kib=$hwm_end
rss_kib_end=$rss_end
rss_anon_kib_at_converge=$anon_done
rss_file_kib_at_converge=$file_done
rss_anon_kib_end=$anon_end
rss_file_kib_end=$file_end
cpu_seconds_at_converge=$cpu_done
cpu_seconds=$cpu_end
server_cpu_seconds_at_converge=$(f "$server_cpu_done - $server_cpu0")
server_cpu_seconds=$(f "$server_cpu_end - $server_cpu0")
quiet_seconds=$QUIET
went_quiet=$quiet
last_request_seconds=$last_s
requests_converge=$requests_converge
requests_total=$requests_total
requests_leases=$requests_leases
requests_per_service_converge=$per_svc_converge
requests_per_service_total=$per_svc_total
user_agent="$user_agent"
status_writes_in_flight_max=$status_writes_in_flight_max
status_writes_in_flight_mean=$status_writes_in_flight_mean
status_write_ms_p50=$status_write_ms_p50
status_write_ms_p99=$status_write_ms_p99
identity=$IDENTITY
etcd_fsync=$ETCD_FSYNC
apf_dispatched="$apf_dispatched"
apf_rejected=$apf_rejected
apf_workload_low_wait_ms_mean=$apf_workload_low_wait_ms_mean
loadavg_at_start="$load"
loadavg_at_end="$(cut -d' ' -f1-3 /proc/loadavg)"
EOF

mib() { python3 -c "print(f'{$1 / 1024:.1f}')"; }
cat <<EOF

== $kind ($version), N=$N, mode $MODE ==
seconds until every Service has an IP  $converge_s   (first IP after $first_s s, half after $half_s s$([[ $MODE == live ]] && echo "; creating took ${create_s} s, all had an IP ${after_create_s} s after the last create"))
distinct IPs / Services with an IP     $distinct / $with_ip
last request (Lease renewals aside)    after $last_s s   (quiet for ${QUIET}s: $([[ $quiet == 1 ]] && echo yes || echo "no, stopped after ${QUIET_MAX}s"))
peak RSS (VmHWM)                       $(mib "$hwm_end") MiB   (at convergence $(mib "$hwm_done") MiB; RSS at the end $(mib "$rss_end") MiB)
RssAnon / RssFile                      $(mib "$anon_done") / $(mib "$file_done") MiB at convergence, $(mib "$anon_end") / $(mib "$file_end") MiB at the end
CPU time (user+sys)                    ${cpu_done} s at convergence, ${cpu_end} s at the end
apiserver+etcd CPU meanwhile           $(f "$server_cpu_done - $server_cpu0") s at convergence, $(f "$server_cpu_end - $server_cpu0") s at the end
API requests until convergence         $requests_converge   ($per_svc_converge per Service)
API requests until quiet               $requests_total   ($per_svc_total per Service; Lease requests: $requests_leases)
Service status writes in flight        at most $status_writes_in_flight_max, $status_writes_in_flight_mean on average while any was   (server-side latency p50 ${status_write_ms_p50} ms, p99 ${status_write_ms_p99} ms)
identity, etcd fsync                   $IDENTITY, $([[ $ETCD_FSYNC == 1 ]] && echo on || echo off)
APF requests dispatched per level      $apf_dispatched   (rejected: $apf_rejected; mean queue wait at workload-low ${apf_workload_low_wait_ms_mean} ms)
load average at start                  $load
figures: $RESULTS_FILE
requests by verb/resource: $RESULTS_DIR/requests.txt
EOF
sed 's/^/    /' "$RESULTS_DIR/requests.txt" | head -20
