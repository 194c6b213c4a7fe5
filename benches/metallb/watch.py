#!/usr/bin/env python3
"""Watches the Services of one namespace and reports when all N have an address.

Usage: watch.py KUBECONFIG NAMESPACE N

Standard library only. Lists the Services once, then watches from that
resourceVersion (re-listing if the watch breaks) and keeps, per Service, the
IPs of status.loadBalancer.ingress. Prints on stdout, flushed, one line each:

  ready <epoch>            after the first list (start the controller now)
  first <epoch>            the first Service with an address was seen
  progress <pct> <epoch>   for 10, 25, 50, 75, 90, 99 %
  done <epoch> <distinct> <services> <with_ip>
                           every one of the N Services has an address;
                           <distinct> is the number of distinct IPs seen

and exits 0. Its requests carry the user agent `ferrolb-bench-watcher`, so the
request count from the audit log can leave them out.
"""

import base64
import http.client
import json
import ssl
import subprocess
import sys
import tempfile
import time

UA = "ferrolb-bench-watcher"


def kubeconfig(path):
    def view(expr):
        return subprocess.run(
            [KUBECTL, "--kubeconfig", path, "config", "view", "--raw", "--minify",
             "-o", "jsonpath=" + expr],
            check=True, capture_output=True, text=True).stdout.strip()

    server = view("{.clusters[0].cluster.server}")
    ca = base64.b64decode(view("{.clusters[0].cluster.certificate-authority-data}"))
    token = view("{.users[0].user.token}")
    return server, ca, token


def connect(server, ctx):
    hostport = server.split("://", 1)[1].rstrip("/")
    host, port = hostport.rsplit(":", 1)
    return http.client.HTTPSConnection(host, int(port), context=ctx, timeout=3700)


def main():
    global KUBECTL
    cfg_path, ns, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    KUBECTL = sys.argv[4] if len(sys.argv) > 4 else "kubectl"
    server, ca, token = kubeconfig(cfg_path)
    ctx = ssl.create_default_context()
    with tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False) as f:
        f.write(ca)
    ctx.load_verify_locations(f.name)
    headers = {"Authorization": "Bearer " + token, "User-Agent": UA,
               "Accept": "application/json"}
    base = f"/api/v1/namespaces/{ns}/services"

    ips = {}            # name -> tuple of ingress IPs
    marks = [10, 25, 50, 75, 90, 99]
    first_seen = False

    def out(*parts):
        print(*parts, flush=True)

    def record(obj):
        nonlocal first_seen
        name = obj["metadata"]["name"]
        ing = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ips[name] = tuple(i["ip"] for i in ing if i.get("ip"))
        if ips[name] and not first_seen:
            first_seen = True
            out("first", f"{time.time():.3f}")

    def check():
        with_ip = sum(1 for v in ips.values() if v)
        while marks and with_ip * 100 >= marks[0] * n:
            out("progress", marks.pop(0), f"{time.time():.3f}")
        if with_ip >= n:
            distinct = len({ip for v in ips.values() for ip in v})
            out("done", f"{time.time():.3f}", distinct, len(ips), with_ip)
            return True
        return False

    announced = False
    while True:
        conn = connect(server, ctx)
        conn.request("GET", base, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            sys.exit(f"watch.py: list: HTTP {resp.status}: {body[:300]!r}")
        lst = json.loads(body)
        ips.clear()
        for item in lst["items"]:
            record(item)
        rv = lst["metadata"]["resourceVersion"]
        if not announced:
            announced = True
            out("ready", f"{time.time():.3f}", len(ips))
        if check():
            return
        conn.request("GET", f"{base}?watch=1&resourceVersion={rv}"
                     "&allowWatchBookmarks=true&timeoutSeconds=3600", headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            print(f"watch.py: watch: HTTP {resp.status}; re-listing", file=sys.stderr)
            resp.read()
            conn.close()
            time.sleep(0.5)
            continue
        try:
            for line in resp:
                ev = json.loads(line)
                typ = ev.get("type")
                if typ in ("ADDED", "MODIFIED"):
                    record(ev["object"])
                elif typ == "DELETED":
                    ips.pop(ev["object"]["metadata"]["name"], None)
                elif typ == "ERROR":
                    print(f"watch.py: watch error {ev}; re-listing", file=sys.stderr)
                    break
                else:
                    continue
                if check():
                    return
        except (OSError, http.client.HTTPException, json.JSONDecodeError) as e:
            print(f"watch.py: watch broke ({e}); re-listing", file=sys.stderr)
        conn.close()


if __name__ == "__main__":
    main()
