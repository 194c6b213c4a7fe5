//! Pure encode/decode of the frames layer 2 answering needs: Ethernet II
//! carrying ARP (RFC 826) or IPv6 + ICMPv6 Neighbor Solicitation /
//! Advertisement (RFC 4861).
//!
//! Hand-written: the maintained packet crates either cover only part of this
//! (no NDP options with a checksum over the pseudo-header) or drag in a whole
//! network stack; the formats are small and fixed, and every decoder here is
//! fuzzed and property-tested. Decoding never panics: every read is a checked
//! slice access that turns into [`DecodeError::Truncated`].

mod arp;
mod ndp;

use std::fmt;
use std::net::Ipv6Addr;

pub use arp::{ArpOp, ArpPacket};
pub use ndp::{Ipv6Header, NdpMessage, NeighborAdvertisement, NeighborSolicitation, icmpv6_checksum};

/// An Ethernet (EUI-48) hardware address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    /// The Ethernet multicast address an IPv6 multicast address maps to
    /// (RFC 2464 §7: 33:33 followed by the low 32 bits).
    pub fn ipv6_multicast(group: &Ipv6Addr) -> Mac {
        let o = group.octets();
        Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(|| format!("MAC {s:?}: fewer than 6 octets"))?;
            *byte = u8::from_str_radix(p, 16).map_err(|e| format!("MAC {s:?}: {e}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC {s:?}: more than 6 octets"));
        }
        Ok(Mac(out))
    }
}

/// The solicited-node multicast group of an address (RFC 4291 §2.7.1):
/// ff02::1:ff00:0/104 plus the low 24 bits.
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Why a frame could not be decoded. One variant per rule a frame can break,
/// so that drop counters can be labelled by reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated { what: &'static str, need: usize, have: usize },
    #[error("ethertype {0:#06x} is neither ARP nor IPv6")]
    UnsupportedEtherType(u16),
    #[error("ARP hardware type {0} is not Ethernet (1)")]
    BadHardwareType(u16),
    #[error("ARP protocol type {0:#06x} is not IPv4")]
    BadProtocolType(u16),
    #[error("ARP address lengths {hlen}/{plen}, expected 6/4")]
    BadAddressLengths { hlen: u8, plen: u8 },
    #[error("ARP operation {0} is neither request (1) nor reply (2)")]
    BadArpOperation(u16),
    #[error("IP version {0} in an IPv6 ethertype frame")]
    BadIpVersion(u8),
    #[error("IPv6 next header {0} is not ICMPv6 (58)")]
    NotIcmpv6(u8),
    #[error("ICMPv6 type {0} is not a Neighbor Solicitation or Advertisement")]
    NotNdp(u8),
    #[error("ICMPv6 code {0} in a neighbor discovery message (must be 0)")]
    BadIcmpv6Code(u8),
    #[error("ICMPv6 checksum {found:#06x}, computed {computed:#06x}")]
    BadChecksum { found: u16, computed: u16 },
    #[error("neighbor discovery hop limit {0} (must be 255: the sender was not on link)")]
    BadHopLimit(u8),
    #[error("neighbor discovery option with length 0 or past the end of the message")]
    BadOption,
    #[error("neighbor discovery target {0} is a multicast address")]
    MulticastTarget(Ipv6Addr),
}

impl DecodeError {
    /// A short fixed name, used as a metric label (bounded cardinality).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::UnsupportedEtherType(_) => "unsupported_ethertype",
            DecodeError::BadHardwareType(_) => "bad_hardware_type",
            DecodeError::BadProtocolType(_) => "bad_protocol_type",
            DecodeError::BadAddressLengths { .. } => "bad_address_lengths",
            DecodeError::BadArpOperation(_) => "bad_arp_operation",
            DecodeError::BadIpVersion(_) => "bad_ip_version",
            DecodeError::NotIcmpv6(_) => "not_icmpv6",
            DecodeError::NotNdp(_) => "not_ndp",
            DecodeError::BadIcmpv6Code(_) => "bad_icmpv6_code",
            DecodeError::BadChecksum { .. } => "bad_checksum",
            DecodeError::BadHopLimit(_) => "bad_hop_limit",
            DecodeError::BadOption => "bad_option",
            DecodeError::MulticastTarget(_) => "multicast_target",
        }
    }
}

/// Bounds-checked read of `N` bytes at `at`.
pub(crate) fn take<const N: usize>(
    bytes: &[u8],
    at: usize,
    what: &'static str,
) -> Result<[u8; N], DecodeError> {
    at.checked_add(N)
        .and_then(|end| bytes.get(at..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(DecodeError::Truncated { what, need: at.saturating_add(N), have: bytes.len() })
}

/// The Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetHeader {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: u16,
}

impl EthernetHeader {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let h: [u8; ETHERNET_HEADER_LEN] = take(bytes, 0, "Ethernet header")?;
        let mut dst = [0; 6];
        let mut src = [0; 6];
        dst.copy_from_slice(&h[0..6]);
        src.copy_from_slice(&h[6..12]);
        Ok(EthernetHeader { dst: Mac(dst), src: Mac(src), ethertype: u16::from_be_bytes([h[12], h[13]]) })
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst.0);
        out.extend_from_slice(&self.src.0);
        out.extend_from_slice(&self.ethertype.to_be_bytes());
    }
}

/// A decoded frame of one of the two kinds this crate handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Arp { eth: EthernetHeader, arp: ArpPacket },
    Ndp { eth: EthernetHeader, ip: Ipv6Header, msg: NdpMessage },
}

impl Frame {
    /// Decodes an Ethernet frame as ARP or as IPv6 NS/NA; anything else is
    /// an error. Trailing bytes (Ethernet padding) are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
        let eth = EthernetHeader::decode(bytes)?;
        let payload = &bytes[ETHERNET_HEADER_LEN..];
        match eth.ethertype {
            ETHERTYPE_ARP => Ok(Frame::Arp { eth, arp: ArpPacket::decode(payload)? }),
            ETHERTYPE_IPV6 => {
                let (ip, msg) = ndp::decode(payload)?;
                Ok(Frame::Ndp { eth, ip, msg })
            }
            other => Err(DecodeError::UnsupportedEtherType(other)),
        }
    }

    pub fn eth(&self) -> &EthernetHeader {
        match self {
            Frame::Arp { eth, .. } | Frame::Ndp { eth, .. } => eth,
        }
    }

    /// An ARP frame; the Ethernet type is set here.
    pub fn arp(dst: Mac, src: Mac, arp: ArpPacket) -> Frame {
        Frame::Arp { eth: EthernetHeader { dst, src, ethertype: ETHERTYPE_ARP }, arp }
    }

    /// An NDP frame with hop limit 255 (RFC 4861 requires it on every ND message).
    pub fn ndp(eth_dst: Mac, eth_src: Mac, src: Ipv6Addr, dst: Ipv6Addr, msg: NdpMessage) -> Frame {
        Frame::Ndp {
            eth: EthernetHeader { dst: eth_dst, src: eth_src, ethertype: ETHERTYPE_IPV6 },
            ip: Ipv6Header { src, dst, hop_limit: 255 },
            msg,
        }
    }

    /// The wire bytes; for NDP the ICMPv6 checksum is computed here.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(86);
        match self {
            Frame::Arp { eth, arp } => {
                eth.encode_into(&mut out);
                arp.encode_into(&mut out);
            }
            Frame::Ndp { eth, ip, msg } => {
                eth.encode_into(&mut out);
                ndp::encode_into(ip, msg, &mut out);
            }
        }
        out
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Arp { eth, arp } => write!(f, "{} > {} {arp}", eth.src, eth.dst),
            Frame::Ndp { eth, ip, msg } => {
                write!(f, "{} > {} {} > {} hlim {} {msg}", eth.src, eth.dst, ip.src, ip.dst, ip.hop_limit)
            }
        }
    }
}

#[cfg(test)]
mod tests;
