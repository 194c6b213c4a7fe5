#!/usr/bin/env python3
"""The controller's API requests, from a kube-apiserver audit log.

  requests.py count AUDIT_LOG START CUTOFF [BREAKDOWN_OUT]
  requests.py wait-quiet AUDIT_LOG START QUIET MAX
  requests.py apf < METRICS   (the apiserver's /metrics: APF figures)

The audit policy (converge.sh) logs every request once, at stage
ResponseComplete, at level Metadata. A request is the controller's when it
was received at or after START (epoch seconds: the controller's start) and not
made by the apiserver itself (user system:apiserver), by kubectl or by the
bench's watcher (user agent ferrolb-bench-watcher); the bench makes no other
requests while the controller runs.

count prints `key=value` lines:
  requests_converge   the controller's requests received before CUTOFF (the
                      moment every Service had an address)
  requests_total      all of them
  requests_leases     of which coordination.k8s.io Leases (leader election)
  last_request        receive time (epoch) of the last request that is not
                      a Lease request
  user_agent          the controller's user agent(s)
  status_writes_in_flight_max / _mean
                      Service status writes (update or patch of
                      services/status) open at once, from each request's
                      receive time to its ResponseComplete stageTimestamp:
                      the most, and the time-weighted mean while any is
                      open
  status_write_ms_p50 / _p99
                      their server-side latency
and writes a table `total before-cutoff verb resource[/subresource]` to
BREAKDOWN_OUT.

wait-quiet follows the log and returns once no controller request other than
a Lease request (leader-election renewals never stop) has been logged for
QUIET seconds, or after MAX seconds; it prints quiet=1 or quiet=0.
"""

import collections
import datetime
import json
import re
import sys
import time


def epoch(ts):
    # RFC 3339 with microseconds, e.g. 2026-11-28T07:30:01.123456Z
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def controller_request(line, start):
    """(verb, resource, received) of a request of the controller, else None."""
    try:
        ev = json.loads(line)
    except json.JSONDecodeError:
        return None
    if ev.get("stage") != "ResponseComplete":
        return None
    user = (ev.get("user") or {}).get("username", "")
    ua = ev.get("userAgent", "")
    if user == "system:apiserver" or ua.startswith("kubectl") or ua.startswith("ferrolb-bench-watcher"):
        return None
    received = epoch(ev["requestReceivedTimestamp"])
    if received < start:
        return None
    ref = ev.get("objectRef") or {}
    res = ref.get("resource", "") or ev.get("requestURI", "?").split("?")[0]
    if ref.get("subresource"):
        res += "/" + ref["subresource"]
    done = epoch(ev.get("stageTimestamp") or ev["requestReceivedTimestamp"])
    return ev.get("verb", "?"), res, received, ua.split(" ")[0], done


def in_flight(intervals):
    """(max, time-weighted mean while at least one is in flight) of the
    number of overlapping [start, end] intervals."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda p: (p[0], p[1]))
    cur = peak = 0
    busy = weighted = 0.0
    prev = None
    for t, d in points:
        if prev is not None and cur > 0:
            busy += t - prev
            weighted += cur * (t - prev)
        cur += d
        peak = max(peak, cur)
        prev = t
    return peak, (weighted / busy if busy > 0 else 0.0)


def percentile(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def count(path, start, cutoff, breakdown_out=None):
    total = collections.Counter()
    before = collections.Counter()
    agents = collections.Counter()
    last = start
    writes = []
    with open(path) as f:
        for line in f:
            r = controller_request(line, start)
            if r is None:
                continue
            verb, res, received, agent, done = r
            if res == "services/status" and verb in ("update", "patch"):
                writes.append((received, done))
            total[(verb, res)] += 1
            agents[agent] += 1
            if received < cutoff:
                before[(verb, res)] += 1
            if res != "leases":
                last = max(last, received)
    print(f"requests_converge={sum(before.values())}")
    print(f"requests_total={sum(total.values())}")
    print(f"requests_leases={sum(c for (v, r), c in total.items() if r == 'leases')}")
    print(f"last_request={last:.3f}")
    print("user_agent=" + ",".join(a for a, _ in agents.most_common()))
    # Service status writes as the API server saw them: received to response.
    peak, mean = in_flight(writes)
    print(f"status_writes_in_flight_max={peak}")
    print(f"status_writes_in_flight_mean={mean:.1f}")
    ms = [(b - a) * 1000 for a, b in writes]
    print(f"status_write_ms_p50={percentile(ms, 0.5):.1f}")
    print(f"status_write_ms_p99={percentile(ms, 0.99):.1f}")
    if breakdown_out:
        with open(breakdown_out, "w") as f:
            f.write(f"{'total':>7} {'<=done':>7}  verb resource\n")
            for (verb, res), c in sorted(total.items(), key=lambda kv: (-kv[1], kv[0])):
                f.write(f"{c:>7} {before[(verb, res)]:>7}  {verb} {res}\n")


def wait_quiet(path, start, quiet, limit):
    t_begin = time.time()
    last_seen = time.time()
    buf = ""
    with open(path) as f:
        while True:
            chunk = f.read()
            if chunk:
                buf += chunk
                *lines, buf = buf.split("\n")
                for line in lines:
                    r = controller_request(line, start)
                    if r is not None and r[1] != "leases":
                        last_seen = time.time()
            now = time.time()
            if now - last_seen >= quiet:
                print("quiet=1")
                return
            if now - t_begin >= limit:
                print("quiet=0")
                return
            time.sleep(0.5)


def apf(metrics):
    """API Priority and Fairness figures from the apiserver's /metrics text."""
    disp, rej = collections.Counter(), collections.Counter()
    wait_sum, wait_count = collections.Counter(), collections.Counter()
    series = {
        "apiserver_flowcontrol_dispatched_requests_total": disp,
        "apiserver_flowcontrol_rejected_requests_total": rej,
        "apiserver_flowcontrol_request_wait_duration_seconds_sum": wait_sum,
        "apiserver_flowcontrol_request_wait_duration_seconds_count": wait_count,
    }
    for line in metrics:
        m = re.match(r"(\w+)\{(.*)\} (\S+)$", line.strip())
        if not m or m.group(1) not in series:
            continue
        level = re.search(r'priority_level="([^"]*)"', m.group(2))
        if level:
            series[m.group(1)][level.group(1)] += float(m.group(3))
    print('apf_dispatched="' + ",".join(f"{k}:{int(v)}" for k, v in sorted(disp.items())) + '"')
    print(f"apf_rejected={int(sum(rej.values()))}")
    low = "workload-low"
    mean = 1000 * wait_sum[low] / wait_count[low] if wait_count[low] else 0.0
    print(f"apf_workload_low_wait_ms_mean={mean:.2f}")


def main():
    cmd = sys.argv[1]
    if cmd == "count":
        count(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]),
              sys.argv[5] if len(sys.argv) > 5 else None)
    elif cmd == "apf":
        apf(sys.stdin)
    elif cmd == "wait-quiet":
        wait_quiet(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
