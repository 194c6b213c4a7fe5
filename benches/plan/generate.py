#!/usr/bin/env python3
"""Writes a plan benchmark input: POOLS pools and SERVICES LoadBalancer
Services spread over namespaces, as one multi-document YAML file.

Pools mix the shapes operators use: IPv4 CIDRs, ranges, IPv6 /64s, pools with
only a priority, namespace-restricted pools and autoAssign: false. Addresses
are only configuration data; nothing is sent anywhere."""
import sys

pools, services, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
namespaces = 50
docs = []
for p in range(pools):
    kind = p % 5
    if kind == 0:
        addresses = [f"10.{p}.0.0/24"]
        extra = ""
    elif kind == 1:
        addresses = [f"10.{p}.0.10-10.{p}.1.200"]
        extra = f"  serviceAllocation:\n    priority: {p}\n"
    elif kind == 2:
        addresses = [f"10.{p}.0.0/26", f"fd00:{p:x}::/64"]
        extra = f"  serviceAllocation:\n    priority: {p}\n    namespaces: [ns{p % namespaces}, ns{(p + 1) % namespaces}]\n"
    elif kind == 3:
        addresses = [f"10.{p}.0.0/28"]
        extra = "  autoAssign: false\n"
    else:
        addresses = [f"10.{p}.0.0/25"]
        extra = "  avoidBuggyIPs: true\n"
    docs.append(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n"
        f"metadata:\n  name: pool-{p:03d}\n  namespace: metallb-system\n"
        "spec:\n  addresses:\n" + "".join(f"    - {a}\n" for a in addresses) + extra
    )
for n in range(namespaces):
    docs.append(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{n}\n  labels:\n    team: t{n % 7}\n")
for s in range(services):
    ns = f"ns{s % namespaces}"
    ann = ""
    if s % 10 == 0:
        ann = "  annotations:\n    metallb.io/allow-shared-ip: shared\n"
    docs.append(
        "apiVersion: v1\nkind: Service\n"
        f"metadata:\n  name: svc-{s:05d}\n  namespace: {ns}\n"
        f"  creationTimestamp: \"2026-01-01T{(s // 3600) % 24:02d}:{(s // 60) % 60:02d}:{s % 60:02d}Z\"\n" + ann +
        "spec:\n  type: LoadBalancer\n"
        f"  clusterIP: 172.{16 + (s >> 16) % 16}.{(s >> 8) & 255}.{s & 255}\n"
        f"  ports:\n    - port: {80 + s % 20}\n      protocol: TCP\n"
    )
with open(out, "w") as f:
    f.write("---\n".join(docs))
