//! The only owner of sockets: outgoing connections, the listener for peers
//! that dial us, socket options (TTL, TCP MD5, VRF device), and cutting
//! the byte stream into messages.

pub mod md5;
pub mod neighbors;

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::packet::{self, DecodeError, HEADER_LEN, MAX_MESSAGE_LEN};

/// The index of a named interface (0 if none).
pub fn if_index(name: &str) -> u32 {
    match std::ffi::CString::new(name) {
        // SAFETY: a NUL-terminated string alive for the call.
        Ok(c) => unsafe { libc::if_nametoindex(c.as_ptr()) },
        Err(_) => 0,
    }
}

/// How to reach one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The peer's address and port; an IPv6 link-local address carries the
    /// interface's scope id (BGP unnumbered).
    pub peer: SocketAddr,
    pub source: Option<IpAddr>,
    /// IP_TTL / IPV6_UNICAST_HOPS: 1 toward a directly connected eBGP
    /// peer, 255 with multihop and for iBGP.
    pub ttl: u32,
    pub md5_password: Option<String>,
    /// SO_BINDTODEVICE target: the VRF device (or the interface of an
    /// unnumbered peer).
    pub device: Option<String>,
}

fn new_socket(addr: &SocketAddr) -> io::Result<Socket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    Ok(s)
}

fn apply_options(s: &Socket, ep: &Endpoint) -> io::Result<()> {
    if let Some(dev) = &ep.device {
        s.bind_device(Some(dev.as_bytes()))?;
    }
    if ep.peer.is_ipv4() {
        s.set_ttl_v4(ep.ttl)?;
    } else {
        s.set_unicast_hops_v6(ep.ttl)?;
    }
    if let Some(pw) = &ep.md5_password {
        md5::set_key(s, ep.peer.ip(), Some(pw.as_bytes()))?;
    }
    s.set_tcp_nodelay(true)?;
    Ok(())
}

/// Dials the peer with every option of `ep` set before the SYN.
pub async fn connect(ep: &Endpoint) -> io::Result<TcpStream> {
    let s = new_socket(&ep.peer)?;
    apply_options(&s, ep)?;
    if let Some(src) = ep.source {
        s.bind(&SocketAddr::new(src, 0).into())?;
    }
    let std: std::net::TcpStream = s.into();
    TcpSocket::from_std_stream(std).connect(ep.peer).await
}

/// Sets the per-connection options on an accepted connection (TTL; the
/// MD5 key is already on the listener).
pub fn prepare_accepted(stream: &TcpStream, ep: &Endpoint) -> io::Result<()> {
    let s = socket2::SockRef::from(stream);
    if ep.peer.is_ipv4() {
        s.set_ttl_v4(ep.ttl)?;
    } else {
        s.set_unicast_hops_v6(ep.ttl)?;
    }
    s.set_tcp_nodelay(true)
}

/// A listening socket for peers that connect to us (port 179 in
/// production, a high port in tests). IPv6 sockets also take IPv4
/// (mapped) connections unless `v6_only`.
pub fn listen(addr: SocketAddr, device: Option<&str>) -> io::Result<TcpListener> {
    let s = new_socket(&addr)?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    if let Some(dev) = device {
        s.bind_device(Some(dev.as_bytes()))?;
    }
    s.bind(&addr.into())?;
    s.listen(128)?;
    let std: std::net::TcpListener = s.into();
    TcpListener::from_std(std)
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed by the peer")]
    Closed,
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The header is bad: the stream cannot be resynchronised.
    #[error("{0}")]
    Header(DecodeError),
}

/// Reads one whole message (header checked before the body is read, so a
/// bad length never makes us wait for bytes that will not come).
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut head = [0u8; HEADER_LEN];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let (len, _) = packet::header::check(&head, MAX_MESSAGE_LEN).map_err(FrameError::Header)?;
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&head);
    msg.resize(len, 0);
    r.read_exact(&mut msg[HEADER_LEN..]).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_split_and_joined_messages() {
        let mut bytes = packet::encode_keepalive();
        bytes.extend(packet::Notification::new(6, 2, vec![1, 2, 3]).encode());
        let (mut a, mut b) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            a.write_all(&bytes).await.expect("write");
        });
        assert_eq!(
            read_message(&mut b).await.expect("first"),
            packet::encode_keepalive()
        );
        let second = read_message(&mut b).await.expect("second");
        assert_eq!(second.len(), 24);
        writer.await.expect("writer");
        assert!(matches!(
            read_message(&mut b).await,
            Err(FrameError::Closed)
        ));
    }

    #[tokio::test]
    async fn bad_header_is_reported_before_reading_the_body() {
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&[0xff, 0xff, 2]);
        let (mut a, mut b) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        a.write_all(&bytes).await.expect("write");
        match read_message(&mut b).await {
            Err(FrameError::Header(e)) => assert_eq!(e.notification().data, vec![0xff, 0xff]),
            other => panic!("unexpected {other:?}"),
        }
    }
}
