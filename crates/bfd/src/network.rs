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
    pub fn open(v6: bool, port: u16, device: Option<&str>) -> Result<Receiver, NetworkError> {
        Self::try_open(v6, port, device).map_err(|source| NetworkError::Receive {
            port,
            device: device.map(str::to_string),
            source,
        })
    }

    fn try_open(v6: bool, port: u16, device: Option<&str>) -> io::Result<Receiver> {
        let socket = Socket::new(domain(v6), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        if let Some(dev) = device {
            socket.bind_device(Some(dev.as_bytes()))?;
        }
        let wildcard: SocketAddr = if v6 {
            socket.set_only_v6(true)?;
            set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
            set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
        } else {
            set_int(&socket, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
            set_int(&socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
        };
        socket.set_nonblocking(true)?;
        socket.bind(&wildcard.into())?;
        Ok(Receiver { socket: UdpSocket::from_std(socket.into())? })
    }

    pub async fn recv(&self) -> io::Result<Datagram> {
        self.socket.async_io(Interest::READABLE, || recv_with_ttl(self.socket.as_raw_fd())).await
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
