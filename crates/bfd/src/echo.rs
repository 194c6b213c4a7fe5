//! BFD echo packets (RFC 5880 §6.4, RFC 5881 §4): pure encode and decode of
//! our echo payload, and of the IPv4/IPv6 + UDP datagram around it.
//!
//! The echo payload is a local matter (RFC 5880 §6.4: "the payload of an
//! Echo packet is a local matter"): only the system that sent an echo
//! packet reads it, after the peer's forwarding plane looped it back. Ours
//! is 16 bytes, laid out like the head of FRR's (version, length, my
//! discriminator) so a capture reads alike, then a sequence number that
//! lets the session refuse duplicates and old packets:
//!
//! ```text
//! 0      1      2             4                  8                       16
//! | ver  | len  |  reserved   | My Discriminator |  Sequence (u64, BE)   |
//! ```
//!
//! The datagram is built by hand because it is sent through an AF_PACKET
//! socket: its IP destination is our own address (RFC 5881 §4, so that the
//! peer forwards it back to us), which the IP stack would deliver locally
//! instead of sending. For the same reason an IPv4 echo coming back is read
//! from an AF_PACKET socket (Linux drops an IPv4 packet whose source is a
//! local address as a martian unless `accept_local` is set), so the IPv4
//! header and the UDP header are checked here too. No maintained crate
//! builds or checks a bare IP + UDP datagram with a given checksum
//! (etherparse would, as a new dependency for 60 lines).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// RFC 5881 §4: the destination port of echo packets.
pub const ECHO_PORT: u16 = 3785;
pub const ECHO_VERSION: u8 = 1;
pub const ECHO_LEN: usize = 16;
/// TTL / hop limit our echo packets leave with (as FRR's); the peer's
/// forwarding decrements it once.
pub const ECHO_TTL: u8 = 255;
/// Traffic class / TOS: precedence 6, internetwork control (as FRR's).
const TOS_INTERNET_CONTROL: u8 = 0xc0;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const PROTO_UDP: u8 = 17;

/// One of our echo packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoPacket {
    pub my_discriminator: u32,
    pub sequence: u64,
}

/// Why bytes are not one of our echo packets (or its datagram).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EchoDecodeError {
    #[error("{len} bytes: shorter than the {ECHO_LEN}-byte echo payload")]
    TooShort { len: usize },
    #[error("echo version {0}, not {ECHO_VERSION}")]
    Version(u8),
    #[error("echo length field {0}, not {ECHO_LEN}")]
    Length(u8),
    #[error("echo My Discriminator is zero")]
    ZeroDiscriminator,
    #[error("{len} bytes: shorter than the IP and UDP headers")]
    DatagramTooShort { len: usize },
    #[error("IP version {0}, not the expected one")]
    IpVersion(u8),
    #[error("IPv4 header length {0} bytes")]
    HeaderLength(usize),
    #[error("IP length {length} beyond the {len}-byte datagram")]
    IpLength { length: usize, len: usize },
    #[error("IPv4 header checksum wrong")]
    IpChecksum,
    #[error("a fragment")]
    Fragment,
    #[error("protocol {0}, not UDP")]
    NotUdp(u8),
    #[error("UDP destination port {0}, not {ECHO_PORT}")]
    Port(u16),
    #[error("UDP length {length} does not fit the IP payload of {room} bytes")]
    UdpLength { length: usize, room: usize },
    #[error("UDP checksum wrong")]
    UdpChecksum,
    #[error("addresses {from} -> {to}: not ours both ways")]
    NotOurs { from: IpAddr, to: IpAddr },
}

impl EchoPacket {
    pub fn encode(&self) -> [u8; ECHO_LEN] {
        let mut out = [0u8; ECHO_LEN];
        out[0] = ECHO_VERSION;
        out[1] = ECHO_LEN as u8;
        out[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        out[8..16].copy_from_slice(&self.sequence.to_be_bytes());
        out
    }

    /// Decodes a UDP payload; bytes past the 16 are ignored, the reserved
    /// bytes are not checked (a later version may use them).
    pub fn decode(payload: &[u8]) -> Result<EchoPacket, EchoDecodeError> {
        let Some(b) = payload.get(..ECHO_LEN) else {
            return Err(EchoDecodeError::TooShort { len: payload.len() });
        };
        if b[0] != ECHO_VERSION {
            return Err(EchoDecodeError::Version(b[0]));
        }
        if usize::from(b[1]) != ECHO_LEN {
            return Err(EchoDecodeError::Length(b[1]));
        }
        let my_discriminator = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        if my_discriminator == 0 {
            return Err(EchoDecodeError::ZeroDiscriminator);
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[8..16]);
        Ok(EchoPacket { my_discriminator, sequence: u64::from_be_bytes(seq) })
    }
}

/// RFC 1071 one's complement sum, folded, not yet inverted.
fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The UDP checksum over the pseudo-header (RFC 768, RFC 8200 §8.1) with
/// `udp`'s checksum field read as it is (zero when computing it).
fn udp_checksum(address: IpAddr, udp: &[u8]) -> u16 {
    match fold(sum(udp, pseudo_sum(address, udp.len()))) {
        // RFC 768: a computed zero is sent as all ones (zero means none).
        0 => 0xffff,
        c => c,
    }
}

fn udp(address: IpAddr, payload: &[u8]) -> Vec<u8> {
    let len = (UDP_HEADER + payload.len()) as u16;
    let mut u = Vec::with_capacity(usize::from(len));
    u.extend_from_slice(&ECHO_PORT.to_be_bytes());
    u.extend_from_slice(&ECHO_PORT.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = udp_checksum(address, &u);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// The IP datagram (no link-layer header) carrying `echo` from `address`
/// to `address`, UDP port 3785 both ways, TTL 255. `id` is the IPv4
/// identification (unused by IPv6).
pub fn datagram(address: IpAddr, echo: &EchoPacket, id: u16) -> Vec<u8> {
    let udp = udp(address, &echo.encode());
    match address {
        IpAddr::V4(a) => {
            let total = (IPV4_HEADER + udp.len()) as u16;
            let mut ip = Vec::with_capacity(usize::from(total));
            ip.extend_from_slice(&[0x45, TOS_INTERNET_CONTROL]);
            ip.extend_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&id.to_be_bytes());
            ip.extend_from_slice(&[0, 0, ECHO_TTL, PROTO_UDP, 0, 0]);
            ip.extend_from_slice(&a.octets());
            ip.extend_from_slice(&a.octets());
            let c = fold(sum(&ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            ip.extend_from_slice(&udp);
            ip
        }
        IpAddr::V6(a) => {
            let mut ip = Vec::with_capacity(IPV6_HEADER + udp.len());
            // Version 6, traffic class, flow label 0.
            let first = (6u32 << 28) | (u32::from(TOS_INTERNET_CONTROL) << 20);
            ip.extend_from_slice(&first.to_be_bytes());
            ip.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            ip.extend_from_slice(&[PROTO_UDP, ECHO_TTL]);
            ip.extend_from_slice(&a.octets());
            ip.extend_from_slice(&a.octets());
            ip.extend_from_slice(&udp);
            ip
        }
    }
}

/// What [`decode_datagram`] found: our echo and the TTL / hop limit it came
/// back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReturnedEcho {
    pub packet: EchoPacket,
    pub ttl: u8,
}

/// Checks an IP datagram read from a packet socket as one of our echo
/// packets come back: IP version of `local`, UDP to port 3785, source and
/// destination both `local`, lengths and checksums right (the kernel has
/// not checked them: packet sockets see frames before the IP stack does).
pub fn decode_datagram(bytes: &[u8], local: IpAddr) -> Result<ReturnedEcho, EchoDecodeError> {
    let (source, destination, ttl, udp) = match local {
        IpAddr::V4(_) => ipv4(bytes)?,
        IpAddr::V6(_) => ipv6(bytes)?,
    };
    if source != local || destination != local {
        return Err(EchoDecodeError::NotOurs { from: source, to: destination });
    }
    let port = u16::from_be_bytes([udp[2], udp[3]]);
    if port != ECHO_PORT {
        return Err(EchoDecodeError::Port(port));
    }
    let length = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if length < UDP_HEADER || length > udp.len() {
        return Err(EchoDecodeError::UdpLength { length, room: udp.len() });
    }
    let udp = &udp[..length];
    let carried = u16::from_be_bytes([udp[6], udp[7]]);
    // IPv4 may leave the checksum out (zero); IPv6 may not (RFC 8200 §8.1).
    if (carried != 0 || local.is_ipv6()) && fold(sum(udp, pseudo_sum(local, length))) != 0 {
        return Err(EchoDecodeError::UdpChecksum);
    }
    Ok(ReturnedEcho { packet: EchoPacket::decode(&udp[UDP_HEADER..])?, ttl })
}

fn pseudo_sum(address: IpAddr, len: usize) -> u32 {
    let octets = match address {
        IpAddr::V4(a) => sum(&a.octets(), 0),
        IpAddr::V6(a) => sum(&a.octets(), 0),
    };
    octets * 2 + u32::from(PROTO_UDP) + len as u32
}

type Parsed<'a> = (IpAddr, IpAddr, u8, &'a [u8]);

fn ipv4(b: &[u8]) -> Result<Parsed<'_>, EchoDecodeError> {
    if b.len() < IPV4_HEADER + UDP_HEADER {
        return Err(EchoDecodeError::DatagramTooShort { len: b.len() });
    }
    if b[0] >> 4 != 4 {
        return Err(EchoDecodeError::IpVersion(b[0] >> 4));
    }
    let header = usize::from(b[0] & 0x0f) * 4;
    if header < IPV4_HEADER || header + UDP_HEADER > b.len() {
        return Err(EchoDecodeError::HeaderLength(header));
    }
    let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if total > b.len() || total < header + UDP_HEADER {
        return Err(EchoDecodeError::IpLength { length: total, len: b.len() });
    }
    if fold(sum(&b[..header], 0)) != 0 {
        return Err(EchoDecodeError::IpChecksum);
    }
    // More-fragments bit or a fragment offset: not a whole datagram.
    if u16::from_be_bytes([b[6], b[7]]) & 0x3fff != 0 {
        return Err(EchoDecodeError::Fragment);
    }
    if b[9] != PROTO_UDP {
        return Err(EchoDecodeError::NotUdp(b[9]));
    }
    let source = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    let destination = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    Ok((IpAddr::V4(source), IpAddr::V4(destination), b[8], &b[header..total]))
}

fn ipv6(b: &[u8]) -> Result<Parsed<'_>, EchoDecodeError> {
    if b.len() < IPV6_HEADER + UDP_HEADER {
        return Err(EchoDecodeError::DatagramTooShort { len: b.len() });
    }
    if b[0] >> 4 != 6 {
        return Err(EchoDecodeError::IpVersion(b[0] >> 4));
    }
    let payload = usize::from(u16::from_be_bytes([b[4], b[5]]));
    if IPV6_HEADER + payload > b.len() {
        return Err(EchoDecodeError::IpLength { length: IPV6_HEADER + payload, len: b.len() });
    }
    if payload < UDP_HEADER {
        return Err(EchoDecodeError::UdpLength { length: payload, room: payload });
    }
    // Ours carry no extension header; anything else is not ours.
    if b[6] != PROTO_UDP {
        return Err(EchoDecodeError::NotUdp(b[6]));
    }
    let addr = |at: usize| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(o))
    };
    Ok((addr(8), addr(24), b[7], &b[IPV6_HEADER..IPV6_HEADER + payload]))
}

#[cfg(test)]
mod tests;
