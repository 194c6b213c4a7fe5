//! TCP MD5 signatures (RFC 2385) through the kernel's TCP_MD5SIG option.
//! Hand-written: no maintained crate exposes it, and libc has the option
//! number but not `struct tcp_md5sig` (linux/tcp.h), declared here.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

const TCP_MD5SIG_MAXKEYLEN: usize = 80;

#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; TCP_MD5SIG_MAXKEYLEN],
}

#[derive(Debug, thiserror::Error)]
#[error("TCP MD5 key longer than {TCP_MD5SIG_MAXKEYLEN} bytes")]
pub struct KeyTooLong;

/// Installs (or with `None` removes) the key for segments to and from
/// `peer` on `socket`: a connecting socket, or a listener (where it
/// applies to connections accepted from that peer).
pub fn set_key(socket: &impl AsRawFd, peer: IpAddr, key: Option<&[u8]>) -> io::Result<()> {
    let key = key.unwrap_or(&[]);
    if key.len() > TCP_MD5SIG_MAXKEYLEN {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, KeyTooLong));
    }
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let sa = socket2::SockAddr::from(SocketAddr::new(peer, 0));
    // SAFETY: SockAddr holds a sockaddr_storage; copying its `len` bytes
    // into another sockaddr_storage stays in bounds.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr() as *const u8,
            &mut sig.addr as *mut libc::sockaddr_storage as *mut u8,
            sa.len() as usize,
        );
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: pointer and length describe `sig`, alive for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            &sig as *const TcpMd5Sig as *const libc::c_void,
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        // Removing a key that was never set is not a failure.
        if key.is_empty() && e.raw_os_error() == Some(libc::ENOENT) {
            Ok(())
        } else {
            Err(e)
        }
    }
}
