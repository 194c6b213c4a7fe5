#!/usr/bin/python3
"""Send one IPv6 Neighbor Solicitation for TARGET on IFACE and print every
Neighbor Advertisement for it as 'MAC SOURCE FLAGS' (accepts NAs whose source is a
link-local address, which ndisc6 1.0.5 ignores).  Exit 0 if at least one NA came,
1 if none did.  Stdlib only (python3 >= 3.8).  From /work/shared/spec/test-peers.md 3.2.
usage: ndprobe.py IFACE TARGET [WAIT_SECONDS]"""
import select, socket, struct, sys, time
iface, target = sys.argv[1], sys.argv[2]
wait = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
idx = socket.if_nametoindex(iface)
tgt = socket.inet_pton(socket.AF_INET6, target)
# /sys may show the host's interfaces under `ip netns exec` only when it
# remounts /sys (it does); read the MAC through the interface index instead of
# trusting that: SIOCGIFHWADDR on a socket of this namespace.
import fcntl
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifreq = fcntl.ioctl(probe.fileno(), 0x8927, struct.pack("256s", iface.encode()[:15]))
probe.close()
mac = ifreq[18:24]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
ns = struct.pack("!BBHI", 135, 0, 0, 0) + tgt + b"\x01\x01" + mac   # NS + source LL option
snm = socket.inet_pton(socket.AF_INET6, "ff02::1:ff00:0")[:13] + tgt[13:]
s.sendto(ns, (socket.inet_ntop(socket.AF_INET6, snm), 0, 0, idx))
found, end = 0, time.time() + wait
while (left := end - time.time()) > 0:
    if not select.select([s], [], [], left)[0]:
        break
    m, anc, _, src = s.recvmsg(2048, 64)
    hl = [struct.unpack("@i", d[:4])[0] for lv, ty, d in anc if ty == socket.IPV6_HOPLIMIT]
    if len(m) < 24 or m[0] != 136 or m[8:24] != tgt or (hl and hl[0] != 255):
        continue
    flags = "".join(f for f, b in (("R", 0x80), ("S", 0x40), ("O", 0x20)) if m[4] & b)
    lla, opts = None, m[24:]
    while len(opts) >= 8 and opts[1]:
        if opts[0] == 2:
            lla = opts[2:8].hex(":")
        opts = opts[opts[1] * 8:]
    print(lla, src[0], flags, flush=True)
    found += 1
sys.exit(0 if found else 1)
