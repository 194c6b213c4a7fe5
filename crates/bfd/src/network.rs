//! The only module that owns sockets (RFC 5881 §4-5, RFC 5883 §2):
//!
//! - a receive socket per (address family, port, device): UDP on the
//!   wildcard address, port 3784 (4784 multi-hop), SO_REUSEADDR so
//!   device-bound sockets can share the port (the kernel prefers the one
//!   bound to the arrival device), and the received TTL / hop limit and
//!   arrival interface delivered as control messages;
//! - a transmit socket per session: source port from 49152-65535, fixed
//!   for the session's life, TTL / hop limit 255, bound to the interface
//!   (SO_BINDTODEVICE) when one is given.
//!
//! - echo (RFC 5881 §4): per session an AF_PACKET sender (our packets are
//!   addressed to ourselves, see [`EchoSender`]), and per local address an
//!   [`EchoReceiver`]: AF_PACKET behind a BPF filter for IPv4, UDP port
//!   3785 for IPv6 (which also reflects the peer's IPv6 echo, as FRR does);
//!   the peer's MAC comes from the neighbour table ([`Neighbours`]).
//!
//! recvmsg and its control messages are read over libc by hand: tokio's
//! and socket2's UDP types give no access to IP_TTL / IPV6_HOPLIMIT.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// RFC 5881 §4: the source port range for control packets.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// Largest datagram read: 24 bytes plus an authentication section of at
/// most 255 bytes fit; anything longer is cut and then fails to decode.
const READ_SIZE: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("receive socket on port {port}{}: {source}", device.as_deref().map(|d| format!(" device {d}")).unwrap_or_default())]
    Receive { port: u16, device: Option<String>, source: io::Error },
    #[error("transmit socket to {peer}: {source}")]
    Transmit { peer: IpAddr, source: io::Error },
    #[error("no free source port in 49152-65535 for {peer}")]
    NoSourcePort { peer: IpAddr },
    #[error("echo packet socket for {local}: {source}")]
    EchoSocket { local: IpAddr, source: io::Error },
    #[error("no source address towards {peer}: {source}")]
    NoSource { peer: IpAddr, source: io::Error },
    #[error("neighbour table read: {0}")]
    Neighbours(String),
}

/// One datagram with what the kernel told about it.
#[derive(Debug)]
pub struct Datagram {
    pub payload: Vec<u8>,
    pub source: SocketAddr,
    /// TTL (IPv4) or hop limit (IPv6) as received; 0 if the kernel gave none,
    /// which no TTL check accepts.
    pub ttl: u8,
    pub ifindex: u32,
}

fn set_int(socket: &Socket, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: an int option of the declared size on a valid descriptor.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn domain(v6: bool) -> Domain {
    if v6 { Domain::IPV6 } else { Domain::IPV4 }
}

/// The receive side: one socket per family, port and device.
#[derive(Debug)]
pub struct Receiver {
    socket: UdpSocket,
}

impl Receiver {
    /// On the wildcard address of the family.
    pub fn open(v6: bool, port: u16, device: Option<&str>) -> Result<Receiver, NetworkError> {
        let any = if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
        Self::open_at(any, port, device)
    }

    /// On one address (the IPv6 echo socket listens on the session's own
    /// address only).
    pub fn open_at(address: IpAddr, port: u16, device: Option<&str>) -> Result<Receiver, NetworkError> {
        Self::try_open(address, port, device).map_err(|source| NetworkError::Receive {
            port,
            device: device.map(str::to_string),
            source,
        })
    }

    fn try_open(address: IpAddr, port: u16, device: Option<&str>) -> io::Result<Receiver> {
        let v6 = address.is_ipv6();
        let socket = Socket::new(domain(v6), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        if let Some(dev) = device {
            socket.bind_device(Some(dev.as_bytes()))?;
        }
        if v6 {
            socket.set_only_v6(true)?;
            set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
            set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        } else {
            set_int(&socket, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
            set_int(&socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
        }
        socket.set_nonblocking(true)?;
        let at = match address {
            // A link-local address (BGP unnumbered) is bound with its scope.
            IpAddr::V6(ip) if ip.is_unicast_link_local() => {
                SocketAddr::V6(SocketAddrV6::new(ip, port, 0, device.map(if_index).unwrap_or(0)))
            }
            _ => SocketAddr::new(address, port),
        };
        socket.bind(&at.into())?;
        Ok(Receiver { socket: UdpSocket::from_std(socket.into())? })
    }

    pub async fn recv(&self) -> io::Result<Datagram> {
        self.socket.async_io(Interest::READABLE, || recv_with_ttl(self.socket.as_raw_fd())).await
    }

    /// Sends from this socket's address and port (the IPv6 echo reflector
    /// answers from port 3785).
    pub async fn send_to(&self, payload: &[u8], to: SocketAddr) -> io::Result<()> {
        self.socket.send_to(payload, to).await.map(|_| ())
    }

    /// The hop limit of what this socket sends (the reflector's 254 tells
    /// FRR its echo came back rather than arrived).
    pub fn set_unicast_hops(&self, hops: u32) -> io::Result<()> {
        socket2::SockRef::from(&self.socket).set_unicast_hops_v6(hops)
    }
}

fn recv_with_ttl(fd: libc::c_int) -> io::Result<Datagram> {
    let mut buf = [0u8; READ_SIZE];
    // u64 words: control messages must be aligned for cmsghdr.
    let mut control = [0u64; 32];
    let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name.as_mut_ptr().cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 32]>();
    // SAFETY: fd is a socket; msg points at live buffers of the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ttl = 0u8;
    let mut ifindex = 0u32;
    // SAFETY: walking the control buffer the kernel filled, with the libc
    // macros that bound every header by msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let data = libc::CMSG_DATA(cmsg);
            match (c.cmsg_level, c.cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                    let v = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                    ttl = u8::try_from(v).unwrap_or(0);
                }
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                    ifindex = u32::try_from(info.ipi_ifindex).unwrap_or(0);
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    ifindex = info.ipi6_ifindex;
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    // SAFETY: recvmsg filled msg_namelen bytes of the storage.
    let source = unsafe { socket_addr(name.as_ptr(), msg.msg_namelen) }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without an IP source"))?;
    Ok(Datagram { payload: buf[..n as usize].to_vec(), source, ttl, ifindex })
}

/// # Safety
/// `storage` must hold `len` initialised bytes of a socket address.
unsafe fn socket_addr(storage: *const libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    // SAFETY: the family tells which sockaddr the storage holds; lengths checked.
    unsafe {
        match i32::from((*storage).ss_family) {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                let a = &*storage.cast::<libc::sockaddr_in>();
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                let a = &*storage.cast::<libc::sockaddr_in6>();
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
            }
            _ => None,
        }
    }
}

/// The transmit side of one session.
#[derive(Debug)]
pub struct Transmitter {
    socket: UdpSocket,
    peer: SocketAddr,
}

impl Transmitter {
    /// `scope_id` is the interface index, needed for a link-local IPv6 peer.
    pub fn open(
        peer: IpAddr,
        port: u16,
        local: Option<IpAddr>,
        device: Option<&str>,
        scope_id: u32,
    ) -> Result<Transmitter, NetworkError> {
        let err = |source| NetworkError::Transmit { peer, source };
        let v6 = peer.is_ipv6();
        let socket = Socket::new(domain(v6), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
        if let Some(dev) = device {
            socket.bind_device(Some(dev.as_bytes())).map_err(err)?;
        }
        if v6 {
            socket.set_only_v6(true).map_err(err)?;
            socket.set_unicast_hops_v6(255).map_err(err)?;
        } else {
            socket.set_ttl_v4(255).map_err(err)?;
        }
        let local = local.unwrap_or(if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) });
        bind_source_port(&socket, local, scope_id).map_err(|e| match e {
            Some(source) => NetworkError::Transmit { peer, source },
            None => NetworkError::NoSourcePort { peer },
        })?;
        socket.set_nonblocking(true).map_err(err)?;
        let peer = match peer {
            IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope_id)),
            IpAddr::V4(ip) => SocketAddr::V4(SocketAddrV4::new(ip, port)),
        };
        Ok(Transmitter { socket: UdpSocket::from_std(socket.into()).map_err(err)?, peer })
    }

    pub fn local_port(&self) -> u16 {
        self.socket.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub async fn send(&self, payload: &[u8]) -> io::Result<()> {
        self.socket.send_to(payload, self.peer).await.map(|_| ())
    }
}

/// Binds to a random free port of [`SOURCE_PORTS`]: `Err(None)` when every
/// try found it taken, `Err(Some(e))` on any other failure.
fn bind_source_port(socket: &Socket, local: IpAddr, scope_id: u32) -> Result<(), Option<io::Error>> {
    let mut rng = fastrand::Rng::new();
    for _ in 0..64 {
        let port = rng.u16(SOURCE_PORTS);
        let addr = match local {
            IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, port, 0, if ip.is_unicast_link_local() { scope_id } else { 0 })),
            IpAddr::V4(ip) => SocketAddr::V4(SocketAddrV4::new(ip, port)),
        };
        match socket.bind(&addr.into()) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(Some(e)),
        }
    }
    Err(None)
}

/// The index of a named interface (0 if none).
pub fn if_index(name: &str) -> u32 {
    match std::ffi::CString::new(name) {
        // SAFETY: a NUL-terminated string.
        Ok(c) => unsafe { libc::if_nametoindex(c.as_ptr()) },
        Err(_) => 0,
    }
}

/// The source address the kernel picks towards `peer` (connecting a UDP
/// socket sends nothing). Echo packets need it: their destination is it.
pub fn source_towards(peer: IpAddr, device: Option<&str>) -> Result<IpAddr, NetworkError> {
    let err = |source| NetworkError::NoSource { peer, source };
    let socket = Socket::new(domain(peer.is_ipv6()), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if let Some(dev) = device {
        socket.bind_device(Some(dev.as_bytes())).map_err(err)?;
    }
    let scope = device.map(if_index).unwrap_or(0);
    let to = match peer {
        IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, 9, 0, if ip.is_unicast_link_local() { scope } else { 0 })),
        IpAddr::V4(ip) => SocketAddr::V4(SocketAddrV4::new(ip, 9)),
    };
    socket.connect(&to.into()).map_err(err)?;
    let local = socket.local_addr().map_err(err)?;
    local.as_socket().map(|a| a.ip()).ok_or_else(|| err(io::Error::other("not an IP socket")))
}

/// Whether this host forwards IPv4 received on `device` (all interfaces
/// when none is named): the remote's IPv4 echo packets come back to it
/// only through our forwarding plane.
pub fn ipv4_forwarding(device: Option<&str>) -> bool {
    let path = format!("/proc/sys/net/ipv4/conf/{}/forwarding", device.unwrap_or("all"));
    std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1")
}

/// Where to send echo packets: the interface and the peer's link-layer
/// address, from the kernel's neighbour table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub mac: [u8; 6],
}

/// Reads the kernel's neighbour table over rtnetlink (the maintained
/// crate the BGP and layer 2 crates use too). The netlink socket is opened
/// by [`Neighbours::open`], so in the namespace of its caller, whatever
/// thread later runs the lookups.
pub struct Neighbours {
    handle: rtnetlink::Handle,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Neighbours {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Neighbours {
    /// Needs a tokio runtime context (the connection runs as a task).
    pub fn open() -> Result<Neighbours, NetworkError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| NetworkError::Neighbours(e.to_string()))?;
        Ok(Neighbours { handle, connection: tokio::spawn(connection) })
    }

    /// The peer's usable entry (on `ifindex` unless 0). It exists as soon
    /// as our control packets went out to the peer.
    pub async fn lookup(&self, peer: IpAddr, ifindex: u32) -> Result<Option<Link>, NetworkError> {
        use futures::StreamExt;
        use netlink_packet_route::AddressFamily;
        use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};

        let family = if peer.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
        let mut dump = self.handle.neighbours().get().set_address_family(family).execute();
        let mut found = None;
        while let Some(msg) = dump.next().await {
            let msg = msg.map_err(|e| NetworkError::Neighbours(e.to_string()))?;
            let h = &msg.header;
            let usable = !matches!(h.state, NeighbourState::Failed | NeighbourState::Incomplete | NeighbourState::None);
            if !usable || (ifindex != 0 && h.ifindex != ifindex) {
                continue;
            }
            let mut dest = None;
            let mut mac = None;
            for a in &msg.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => dest = Some(IpAddr::V4(*ip)),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => dest = Some(IpAddr::V6(*ip)),
                    NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(l.as_slice()).ok(),
                    _ => {}
                }
            }
            if let (Some(d), Some(mac)) = (dest, mac)
                && d == peer
            {
                found = Some(Link { ifindex: h.ifindex, mac });
            }
        }
        Ok(found)
    }
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

fn ethertype(v6: bool) -> u16 {
    if v6 { ETH_P_IPV6 } else { ETH_P_IP }
}

/// A `sockaddr_ll` on `ifindex` for `protocol`, with a destination MAC
/// when sending.
fn link_address(ifindex: u32, protocol: u16, mac: Option<[u8; 6]>) -> socket2::SockAddr {
    let mut storage = socket2::SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is a sockaddr type of this platform and fits the storage.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = protocol.to_be();
    // Interface indexes are positive c_ints in the kernel.
    ll.sll_ifindex = ifindex as i32;
    if let Some(mac) = mac {
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&mac);
    }
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the storage holds an initialised sockaddr_ll of `len` bytes.
    unsafe { socket2::SockAddr::new(storage, len) }
}

/// Sends one session's echo packets: an AF_PACKET datagram socket (the
/// kernel adds the Ethernet header for the MAC given), because the IP stack
/// would deliver a packet addressed to our own address locally instead of
/// sending it to the peer (RFC 5881 §4 wants exactly that address).
/// Protocol 0: it receives nothing.
#[derive(Debug)]
pub struct EchoSender {
    socket: Socket,
    local: IpAddr,
}

impl EchoSender {
    pub fn open(local: IpAddr) -> Result<EchoSender, NetworkError> {
        let err = |source| NetworkError::EchoSocket { local, source };
        let socket = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(0))).map_err(err)?;
        socket.set_nonblocking(true).map_err(err)?;
        Ok(EchoSender { socket, local })
    }

    pub fn local(&self) -> IpAddr {
        self.local
    }

    /// Never blocks: a full socket buffer drops the packet (the next one
    /// follows within the echo interval).
    pub fn send(&self, echo: &crate::echo::EchoPacket, link: Link) -> io::Result<()> {
        // The IPv4 identification only has to differ between packets in flight.
        let id = echo.sequence as u16;
        let datagram = crate::echo::datagram(self.local, echo, id);
        let to = link_address(link.ifindex, ethertype(self.local.is_ipv6()), Some(link.mac));
        let sent = self.socket.send_to(&datagram, &to)?;
        if sent != datagram.len() {
            return Err(io::Error::other(format!("sent {sent} of {} bytes", datagram.len())));
        }
        Ok(())
    }
}

/// Classic BPF for the IPv4 echo receiver, run by the kernel on every IPv4
/// packet of the interface (offsets from the IP header: the socket is
/// SOCK_DGRAM): keep UDP, unfragmented, TTL below 255 (forwarded once:
/// not our own packet on its way out, which packet sockets see too), from
/// `local` to `local`, to port 3785; drop the rest before it is copied or
/// wakes us. Checking both
/// addresses keeps the peer's own echo packets we forward, and every other
/// packet to port 3785, away. Instructions as (code, jump-if-true,
/// jump-if-false, k); jumps are relative to the next instruction.
fn ipv4_echo_filter(local: Ipv4Addr) -> Vec<socket2::SockFilter> {
    const LDB_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const LDH_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const LDW_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const LDX_MSH: u16 = 0xb1; // BPF_LDX | BPF_B | BPF_MSH: X = 4 * (P[k] & 0xf)
    const LDH_IND: u16 = 0x48; // BPF_LD | BPF_H | BPF_IND
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    // Loads are big-endian: the address as a big-endian word.
    let addr = u32::from(local);
    let program: [(u16, u8, u8, u32); 15] = [
        (LDB_ABS, 0, 0, 9),                               // 0: protocol
        (JEQ_K, 0, 12, 17),                               // 1: not UDP -> 14
        (LDB_ABS, 0, 0, 8),                               // 2: TTL
        (JEQ_K, 10, 0, u32::from(crate::echo::ECHO_TTL)), // 3: ours on the way out -> 14
        (LDH_ABS, 0, 0, 6),                               // 4: flags, fragment offset
        (JSET_K, 8, 0, 0x3fff),                           // 5: a fragment -> 14
        (LDW_ABS, 0, 0, 12),                              // 6: source
        (JEQ_K, 0, 6, addr),                              // 7: not ours -> 14
        (LDW_ABS, 0, 0, 16),                              // 8: destination
        (JEQ_K, 0, 4, addr),                              // 9: not ours -> 14
        (LDX_MSH, 0, 0, 0),                               // 10: X = IP header length
        (LDH_IND, 0, 0, 2),                               // 11: UDP destination port
        (JEQ_K, 0, 1, u32::from(crate::echo::ECHO_PORT)), // 12: not 3785 -> 14
        (RET_K, 0, 0, READ_SIZE as u32),                  // 13: accept
        (RET_K, 0, 0, 0),                                 // 14: drop
    ];
    program.iter().map(|&(code, jt, jf, k)| socket2::SockFilter::new(code, jt, jf, k)).collect()
}

/// Where our echo packets come back, for one local address: IPv4 through
/// an AF_PACKET socket behind [`ipv4_echo_filter`] (Linux drops an IPv4
/// packet whose source is one of its addresses as a martian before any UDP
/// socket sees it, unless `accept_local` is set); IPv6 through a UDP socket
/// on the address, port 3785 (the kernel delivers those; it also receives
/// the peer's echo packets, which the IPv6 reflector sends back).
#[derive(Debug)]
pub enum EchoReceiver {
    V4 { socket: tokio::io::unix::AsyncFd<Socket>, local: IpAddr },
    V6(Receiver),
}

/// What came in on an [`EchoReceiver`].
#[derive(Debug)]
pub enum EchoInput {
    /// From our own address: one of ours back from the peer, if it decodes.
    Returned(Result<crate::echo::ReturnedEcho, crate::echo::EchoDecodeError>),
    /// Someone else's echo packet to us (IPv6): reflect it.
    Foreign(Datagram),
}

impl EchoReceiver {
    /// `ifindex` 0 listens on every interface (no interface configured).
    pub fn open(local: IpAddr, ifindex: u32, device: Option<&str>) -> Result<EchoReceiver, NetworkError> {
        match local {
            IpAddr::V6(_) => {
                let r = Receiver::open_at(local, crate::echo::ECHO_PORT, device)?;
                r.set_unicast_hops(u32::from(crate::echo::ECHO_TTL - 1))
                    .map_err(|source| NetworkError::EchoSocket { local, source })?;
                Ok(EchoReceiver::V6(r))
            }
            IpAddr::V4(addr) => {
                let err = |source| NetworkError::EchoSocket { local, source };
                // Protocol 0 until bound: no unfiltered packet slips in first.
                let socket = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(0))).map_err(err)?;
                socket.attach_filter(&ipv4_echo_filter(addr)).map_err(err)?;
                // Our own echo packets going out need not wake us (Linux >=
                // 4.20); the filter's TTL test drops them anyway.
                if let Err(error) = set_int(&socket, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1) {
                    tracing::debug!(%error, "PACKET_IGNORE_OUTGOING not available");
                }
                socket.set_nonblocking(true).map_err(err)?;
                socket.bind(&link_address(ifindex, ETH_P_IP, None)).map_err(err)?;
                // SAFETY: the Socket owns its descriptor, which stays open and
                // the same until the AsyncFd (its only owner from here on) is
                // dropped.
                let socket = unsafe { tokio::io::unix::AsyncFd::register_with_interest(socket, Interest::READABLE) }
                    .map_err(|e| err(io::Error::other(e.to_string())))?;
                Ok(EchoReceiver::V4 { socket, local })
            }
        }
    }

    pub async fn recv(&self) -> io::Result<EchoInput> {
        match self {
            EchoReceiver::V6(r) => {
                let d = r.recv().await?;
                if d.source.ip() != self.local() {
                    return Ok(EchoInput::Foreign(d));
                }
                let returned = crate::echo::EchoPacket::decode(&d.payload)
                    .map(|packet| crate::echo::ReturnedEcho { packet, ttl: d.ttl });
                Ok(EchoInput::Returned(returned))
            }
            EchoReceiver::V4 { socket, local } => loop {
                let mut guard = socket.readable().await?;
                let mut buf = [MaybeUninit::<u8>::uninit(); READ_SIZE];
                match guard.try_io(|s| s.get_ref().recv(&mut buf)) {
                    Ok(Ok(n)) => {
                        // SAFETY: recv initialised the first n bytes.
                        let bytes: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
                        return Ok(EchoInput::Returned(crate::echo::decode_datagram(&bytes, *local)));
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => continue,
                }
            },
        }
    }

    pub fn local(&self) -> IpAddr {
        match self {
            EchoReceiver::V4 { local, .. } => *local,
            EchoReceiver::V6(r) => r.socket.local_addr().map(|a| a.ip()).unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        }
    }

    /// Sends a foreign echo packet back where it came from (IPv6, hop limit
    /// 254: FRR reflects IPv6 echo in user space too and tells the two
    /// apart by it).
    pub async fn reflect(&self, d: &Datagram) -> io::Result<()> {
        match self {
            EchoReceiver::V6(r) => r.send_to(&d.payload, d.source).await,
            EchoReceiver::V4 { .. } => Ok(()),
        }
    }
}
