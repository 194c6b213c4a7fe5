#!/usr/bin/env python3
"""Counts the controller's API requests in a kube-apiserver audit log.

Usage: requests.py AUDIT_LOG CUTOFF_EPOCH [BREAKDOWN_OUT]

The audit policy (converge.sh) logs every request once, at stage
ResponseComplete, at level Metadata. A request is the controller's when it
was not made by the apiserver itself (user system:apiserver), by kubectl (the
bench's setup) or by the bench's watcher (user agent ferrolb-bench-watcher);
the bench makes no other requests while the controller runs.

Prints `key=value` lines:
  requests_converge   requests received before CUTOFF (the moment every
                      Service had an address)
  requests_total      all of the controller's requests in the log
  user_agent          the controller's user agent(s)
and writes a table `count  verb  resource[/subresource]` of all of the
controller's requests (total, and before the cutoff) to BREAKDOWN_OUT.
"""

import collections
import datetime
import json
import sys


def epoch(ts):
    # RFC 3339 with microseconds, e.g. 2026-11-28T07:30:01.123456Z
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def main():
    path, cutoff = sys.argv[1], float(sys.argv[2])
    breakdown_out = sys.argv[3] if len(sys.argv) > 3 else None
    total = collections.Counter()
    before = collections.Counter()
    agents = collections.Counter()
    with open(path) as f:
        for line in f:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if ev.get("stage") != "ResponseComplete":
                continue
            user = (ev.get("user") or {}).get("username", "")
            ua = ev.get("userAgent", "")
            if user == "system:apiserver" or ua.startswith("kubectl") or ua.startswith("ferrolb-bench-watcher"):
                continue
            ref = ev.get("objectRef") or {}
            res = ref.get("resource", "") or ev.get("requestURI", "?").split("?")[0]
            if ref.get("subresource"):
                res += "/" + ref["subresource"]
            key = (ev.get("verb", "?"), res)
            total[key] += 1
            agents[ua.split(" ")[0]] += 1
            if epoch(ev["requestReceivedTimestamp"]) < cutoff:
                before[key] += 1
    print(f"requests_converge={sum(before.values())}")
    print(f"requests_total={sum(total.values())}")
    print("user_agent=" + ",".join(a for a, _ in agents.most_common()))
    if breakdown_out:
        with open(breakdown_out, "w") as f:
            f.write(f"{'total':>7} {'<=done':>7}  verb resource\n")
            for (verb, res), c in sorted(total.items(), key=lambda kv: (-kv[1], kv[0])):
                f.write(f"{c:>7} {before[(verb, res)]:>7}  {verb} {res}\n")


if __name__ == "__main__":
    main()
