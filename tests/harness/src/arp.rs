//! A minimal ARP requester on an AF_PACKET socket, for failover timing.
//!
//! Hand-written rather than driven through `arping`: a measurement with
//! ~20 ms resolution needs a request every 20 ms and the arrival time of
//! each answer, which a child process printing to a pipe does not give
//! reliably; and the frames are 42 fixed bytes, not worth a packet crate.
//! Must be called on a thread inside the namespace whose interface it uses
//! (see [`crate::netns::NetNs::enter`]).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::probe::ArpAnswer;

const ETH_P_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];

/// `02:00:00:00:00:11` -> bytes.
pub(crate) fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

impl Request {
    /// Ethernet broadcast + ARP who-has (RFC 826).
    fn frame(&self) -> [u8; 42] {
        let mut f = [0u8; 42];
        f[0..6].copy_from_slice(&BROADCAST);
        f[6..12].copy_from_slice(&self.sender_mac);
        f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
        f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
        f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
        f[18] = 6;
        f[19] = 4;
        f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
        f[22..28].copy_from_slice(&self.sender_mac);
        f[28..32].copy_from_slice(&self.sender_ip.octets());
        // target MAC stays zero
        f[38..42].copy_from_slice(&self.target_ip.octets());
        f
    }
}

/// Whether `frame` is an answer for `target` from a MAC other than
/// `ignore`: a reply whose sender IP is `target`, or a gratuitous request
/// or reply (sender IP = target IP = `target`). Returns the sender MAC and
/// whether it was gratuitous.
pub(crate) fn classify(frame: &[u8], target: Ipv4Addr, ignore: [u8; 6]) -> Option<([u8; 6], bool)> {
    if frame.len() < 42 || frame[12..14] != ETH_P_ARP.to_be_bytes() {
        return None;
    }
    if frame[16..18] != 0x0800u16.to_be_bytes() || frame[18] != 6 || frame[19] != 4 {
        return None;
    }
    let op = u16::from_be_bytes([frame[20], frame[21]]);
    let sha: [u8; 6] = frame[22..28].try_into().ok()?;
    let spa = &frame[28..32];
    let tpa = &frame[38..42];
    if spa != target.octets() || sha == ignore {
        return None;
    }
    let gratuitous = tpa == target.octets();
    match op {
        2 => Some((sha, gratuitous)),
        1 if gratuitous => Some((sha, true)),
        _ => None,
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn link_address(ifindex: i32) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ARP.to_be();
    addr.sll_ifindex = ifindex;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&BROADCAST);
    addr
}

/// Sends `request` on `iface` every `interval` and returns the first answer
/// [`classify`] accepts, or `None` at `deadline`.
pub(crate) fn watch(
    iface: &str,
    request: &Request,
    ignore: [u8; 6],
    interval: Duration,
    deadline: Instant,
) -> io::Result<Option<ArpAnswer>> {
    let name = std::ffi::CString::new(iface)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: name is a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    let ifindex =
        i32::try_from(ifindex).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    // SAFETY: plain socket(2); the fd is owned right after.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ARP.to_be()),
        )
    })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = link_address(ifindex);
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_ll of `len` bytes.
    check(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            len,
        )
    })?;
    let frame = request.frame();
    let mut next_send = Instant::now();
    let mut buf = [0u8; 1514];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        if now >= next_send {
            // SAFETY: frame and addr are valid for the lengths given.
            check(unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    len,
                ) as libc::c_int
            })?;
            next_send += interval;
            if next_send < now {
                next_send = now + interval;
            }
        }
        let wait = next_send
            .min(deadline)
            .saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ready == 0 {
            continue;
        }
        // Drain everything queued; our own requests come back too (outgoing
        // frames are looped to packet sockets) and are not answers.
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    break;
                }
                return Err(e);
            }
            let n = usize::try_from(n).unwrap_or(0);
            if let Some((mac, gratuitous)) = classify(&buf[..n], request.target_ip, ignore) {
                return Ok(Some(ArpAnswer {
                    at: Instant::now(),
                    mac: mac_text(&mac),
                    gratuitous,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTER: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const NODE1: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const NODE2: [u8; 6] = [2, 0, 0, 0, 0, 0x12];
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);

    fn reply(from: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr, op: u16) -> [u8; 42] {
        let mut f = Request {
            sender_mac: from,
            sender_ip,
            target_ip,
        }
        .frame();
        f[20..22].copy_from_slice(&op.to_be_bytes());
        f
    }

    #[test]
    fn request_frame_is_an_arp_who_has() {
        let f = Request {
            sender_mac: ROUTER,
            sender_ip: Ipv4Addr::new(198, 51, 100, 1),
            target_ip: VIP,
        }
        .frame();
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[28..32], &[198, 51, 100, 1]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[198, 51, 100, 200]);
    }

    #[test]
    fn answers_from_the_ignored_mac_or_for_other_ips_do_not_count() {
        let router_ip = Ipv4Addr::new(198, 51, 100, 1);
        // our own request, looped back
        let own = reply(ROUTER, router_ip, VIP, 1);
        assert_eq!(classify(&own, VIP, NODE1), None);
        // the old owner's reply
        assert_eq!(classify(&reply(NODE1, VIP, router_ip, 2), VIP, NODE1), None);
        // the new owner's reply
        assert_eq!(
            classify(&reply(NODE2, VIP, router_ip, 2), VIP, NODE1),
            Some((NODE2, false))
        );
        // the new owner's gratuitous request and reply
        assert_eq!(
            classify(&reply(NODE2, VIP, VIP, 1), VIP, NODE1),
            Some((NODE2, true))
        );
        assert_eq!(
            classify(&reply(NODE2, VIP, VIP, 2), VIP, NODE1),
            Some((NODE2, true))
        );
        // someone else's address
        let other = Ipv4Addr::new(198, 51, 100, 12);
        assert_eq!(
            classify(&reply(NODE2, other, router_ip, 2), VIP, NODE1),
            None
        );
        // truncated
        assert_eq!(
            classify(&reply(NODE2, VIP, router_ip, 2)[..30], VIP, NODE1),
            None
        );
    }

    #[test]
    fn macs_parse_and_print() {
        assert_eq!(parse_mac("02:00:00:00:00:11"), Some(NODE1));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:11:22"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:11"), None);
        assert_eq!(mac_text(&NODE2), "02:00:00:00:00:12");
    }
}
