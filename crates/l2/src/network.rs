//! The only module that owns sockets: one AF_PACKET socket per usable
//! interface (receive ARP and NDP, send what the announcer asks for) and one
//! IPv6 socket holding the solicited-node group memberships.
//!
//! Raw AF_PACKET handling is written here over socket2 + libc because no
//! maintained crate does it: `pnet` has had no release since May 2024 and the
//! others wrap only parts (no BPF attach, no per-interface binding).

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::interfaces::InterfaceInfo;

/// A frame as read from one interface.
#[derive(Debug)]
pub struct Received {
    pub ifindex: u32,
    pub bytes: Vec<u8>,
}

/// Frames that never reached the announcer.
#[derive(Debug, Default)]
pub struct NetworkStats {
    /// The announcer's queue was full (a flood): dropped at the socket.
    pub queue_full: AtomicU64,
    /// The socket's receive buffer was full: dropped by the kernel.
    pub socket_buffer_full: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("opening the IPv6 socket for multicast group membership: {0}")]
    GroupSocket(#[source] io::Error),
    #[error("opening a packet socket on {interface}: {source}")]
    PacketSocket { interface: String, source: io::Error },
}

/// Largest frame read. ARP is 28 bytes and an NS/NA with its option 86
/// bytes; anything cut short by this fails to decode and is counted.
const READ_SIZE: usize = 1514;

/// Classic BPF run by the kernel on every frame of the interface: keep ARP,
/// and IPv6 whose next header is ICMPv6 (58) with type 135 (NS) or 136 (NA);
/// drop everything else before it is copied to user space. Instructions as
/// (code, jump-if-true, jump-if-false, k); jumps are relative to the next one.
const FILTER: [(u16, u8, u8, u32); 10] = {
    const LDH_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const LDB_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    [
        (LDH_ABS, 0, 0, 12),               // 0: ethertype
        (JEQ_K, 6, 0, 0x0806),             // 1: ARP -> 8
        (JEQ_K, 0, 6, 0x86dd),             // 2: not IPv6 -> 9
        (LDB_ABS, 0, 0, 14 + 6),           // 3: IPv6 next header
        (JEQ_K, 0, 4, 58),                 // 4: not ICMPv6 -> 9
        (LDB_ABS, 0, 0, 14 + 40),          // 5: ICMPv6 type
        (JEQ_K, 1, 0, 135),                // 6: NS -> 8
        (JEQ_K, 0, 1, 136),                // 7: NA -> 8, else 9
        (RET_K, 0, 0, READ_SIZE as u32),   // 8: accept
        (RET_K, 0, 0, 0),                  // 9: drop
    ]
};

fn filter() -> Vec<SockFilter> {
    FILTER.iter().map(|&(code, jt, jf, k)| SockFilter::new(code, jt, jf, k)).collect()
}

/// One AF_PACKET socket bound to one interface.
struct PacketSocket {
    fd: AsyncFd<Socket>,
}

impl PacketSocket {
    fn open(ifindex: u32) -> io::Result<Self> {
        // Protocol 0: the socket receives nothing until bound below, so no
        // frame of another interface or unfiltered frame slips in first.
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
        socket.attach_filter(&filter())?;
        // Our own frames need not come back to us (Linux >= 4.20); without the
        // option the announcer still ignores frames from its own MACs.
        if let Err(error) = set_int_option(&socket, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1) {
            tracing::debug!(ifindex, %error, "PACKET_IGNORE_OUTGOING not available");
        }
        socket.set_nonblocking(true)?;
        socket.bind(&link_address(ifindex, libc::ETH_P_ALL as u16))?;
        // SAFETY: the Socket owns its descriptor, which stays open and the
        // same until the AsyncFd (its only owner from here on) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(PacketSocket { fd })
    }

    /// Frames the kernel dropped for lack of buffer space since the last
    /// call (PACKET_STATISTICS resets on read).
    fn kernel_drops(&self) -> io::Result<u64> {
        let mut stats = libc::tpacket_stats { tp_packets: 0, tp_drops: 0 };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: a tpacket_stats buffer of the declared length on a packet socket.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.get_ref().as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc == 0 { Ok(u64::from(stats.tp_drops)) } else { Err(io::Error::last_os_error()) }
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        let sent = self.fd.get_ref().send(frame)?;
        if sent != frame.len() {
            return Err(io::Error::other(format!("sent {sent} of {} bytes", frame.len())));
        }
        Ok(())
    }
}

fn set_int_option(socket: &Socket, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a c_int option value of the declared size on a valid socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// A `sockaddr_ll` for binding to one interface.
fn link_address(ifindex: u32, protocol: u16) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is a sockaddr type of this platform and fits the storage.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = protocol.to_be();
    // Interface indexes are positive c_ints in the kernel.
    ll.sll_ifindex = ifindex as i32;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the storage holds an initialised sockaddr_ll of `len` bytes.
    unsafe { SockAddr::new(storage, len) }
}

/// Reads frames until the socket fails for good or the task is aborted.
/// The queue is bounded: under a flood frames are dropped here (counted)
/// instead of piling up in memory.
async fn read_loop(ifindex: u32, socket: Arc<PacketSocket>, to: mpsc::Sender<Received>, stats: Arc<NetworkStats>) {
    let mut buf = vec![0u8; READ_SIZE];
    let mut stats_read = tokio::time::Instant::now();
    loop {
        // At most once a second: a syscall per frame would slow a flood down further.
        if stats_read.elapsed() >= Duration::from_secs(1) {
            stats_read = tokio::time::Instant::now();
            if let Ok(n) = socket.kernel_drops() {
                stats.socket_buffer_full.fetch_add(n, Ordering::Relaxed);
            }
        }
        let mut guard = match socket.fd.readable().await {
            Ok(g) => g,
            Err(error) => {
                tracing::warn!(ifindex, %error, "packet socket poll failed; reader stops");
                return;
            }
        };
        match guard.try_io(|fd| recv(fd.get_ref(), &mut buf)) {
            Ok(Ok(n)) => match to.try_send(Received { ifindex, bytes: buf[..n].to_vec() }) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    stats.queue_full.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            },
            Ok(Err(error)) => {
                // ENETDOWN and the like while an interface goes away; the
                // next interface update closes this socket.
                tracing::debug!(ifindex, %error, "packet socket read failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_would_block) => {}
        }
    }
}

fn recv(socket: &Socket, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of buf.len() bytes.
    let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

struct Open {
    name: String,
    socket: Arc<PacketSocket>,
    reader: tokio::task::JoinHandle<()>,
}

/// The sockets of the responder. Lives on the announcer's task; readers run
/// on their own tasks and feed the bounded queue.
pub struct Network {
    open: BTreeMap<u32, Open>,
    groups: Socket,
    to_announcer: mpsc::Sender<Received>,
    stats: Arc<NetworkStats>,
}

impl Drop for Network {
    fn drop(&mut self) {
        for o in self.open.values() {
            o.reader.abort();
        }
    }
}

impl Network {
    /// Sockets are created in the network namespace of the calling thread.
    pub fn new(to_announcer: mpsc::Sender<Received>, stats: Arc<NetworkStats>) -> Result<Self, NetworkError> {
        let groups = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(NetworkError::GroupSocket)?;
        Ok(Network { open: BTreeMap::new(), groups, to_announcer, stats })
    }

    /// Opens a socket on every ARP-usable interface that has none and closes
    /// those of interfaces that are gone or no longer usable. Returns the
    /// interfaces that could not be opened (they are retried on the next call).
    pub fn sync(&mut self, links: &[InterfaceInfo]) -> Vec<NetworkError> {
        let wanted: BTreeMap<u32, &InterfaceInfo> =
            links.iter().filter(|l| l.arp_usable()).map(|l| (l.index, l)).collect();
        self.open.retain(|index, o| {
            let keep = wanted.get(index).is_some_and(|l| l.name == o.name);
            if !keep {
                tracing::info!(interface = %o.name, "layer 2 responder stopped");
                o.reader.abort();
            }
            keep
        });
        let mut errors = Vec::new();
        for (index, link) in wanted {
            if self.open.contains_key(&index) {
                continue;
            }
            match PacketSocket::open(index) {
                Ok(socket) => {
                    let socket = Arc::new(socket);
                    let reader = tokio::spawn(read_loop(
                        index,
                        socket.clone(),
                        self.to_announcer.clone(),
                        self.stats.clone(),
                    ));
                    tracing::info!(interface = %link.name, "layer 2 responder started");
                    self.open.insert(index, Open { name: link.name.clone(), socket, reader });
                }
                Err(source) => errors.push(NetworkError::PacketSocket { interface: link.name.clone(), source }),
            }
        }
        errors
    }

    pub fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        match self.open.get(&ifindex) {
            Some(o) => o.socket.send(frame),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("no packet socket on interface {ifindex}"))),
        }
    }

    pub fn interface_name(&self, ifindex: u32) -> Option<&str> {
        self.open.get(&ifindex).map(|o| o.name.as_str())
    }

    /// Joining makes the kernel send MLD reports (so snooping switches
    /// forward the group) and the NIC accept the group's MAC.
    pub fn join(&self, ifindex: u32, group: &Ipv6Addr) -> io::Result<()> {
        match self.groups.join_multicast_v6(group, ifindex) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(()),
            other => other,
        }
    }

    pub fn leave(&self, ifindex: u32, group: &Ipv6Addr) -> io::Result<()> {
        match self.groups.leave_multicast_v6(group, ifindex) {
            // Already gone with its interface.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the classic BPF program the way the kernel does (only the
    /// instructions used here; an out-of-bounds load drops the frame).
    fn run(frame: &[u8]) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let (code, jt, jf, k) = FILTER[pc];
            let at = k as usize;
            match code {
                0x28 => match frame.get(at..at + 2) {
                    Some(b) => acc = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0,
                },
                0x30 => match frame.get(at) {
                    Some(b) => acc = u32::from(*b),
                    None => return 0,
                },
                0x15 => pc += usize::from(if acc == k { jt } else { jf }),
                0x06 => return k,
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn filter_keeps_arp_ns_na_and_drops_the_rest() {
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(run(&arp), READ_SIZE as u32);
        let icmp6 = |kind: u8, next: u8| {
            let mut f = vec![0u8; 86];
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f[20] = next;
            f[54] = kind;
            f
        };
        assert_eq!(run(&icmp6(135, 58)), READ_SIZE as u32);
        assert_eq!(run(&icmp6(136, 58)), READ_SIZE as u32);
        assert_eq!(run(&icmp6(128, 58)), 0, "echo request");
        assert_eq!(run(&icmp6(135, 17)), 0, "UDP");
        let mut ipv4 = vec![0u8; 60];
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(run(&ipv4), 0);
        // Loads past the end drop the frame instead of reading garbage.
        assert_eq!(run(&[0u8; 10]), 0);
        let mut short_ipv6 = vec![0u8; 30];
        short_ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        short_ipv6[20] = 58;
        assert_eq!(run(&short_ipv6), 0);
    }
}
