//! IPv6 header + ICMPv6 Neighbor Solicitation / Advertisement (RFC 4861 §4.3,
//! §4.4) with the Source / Target Link-Layer Address options (§4.6.1).

use std::fmt;
use std::net::Ipv6Addr;

use super::{DecodeError, Mac, take};

const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
const TYPE_NS: u8 = 135;
const TYPE_NA: u8 = 136;
const OPT_SOURCE_LLA: u8 = 1;
const OPT_TARGET_LLA: u8 = 2;
/// Type, code, checksum, flags/reserved, target.
const ND_FIXED_LEN: usize = 24;

/// The IPv6 header fields that matter to neighbor discovery. Traffic class
/// and flow label are sent as 0 and ignored on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicitation {
    pub target: Ipv6Addr,
    pub source_lla: Option<Mac>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    pub router: bool,
    pub solicited: bool,
    pub override_flag: bool,
    pub target: Ipv6Addr,
    pub target_lla: Option<Mac>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpMessage {
    Solicitation(NeighborSolicitation),
    Advertisement(NeighborAdvertisement),
}

impl NdpMessage {
    pub fn target(&self) -> Ipv6Addr {
        match self {
            NdpMessage::Solicitation(ns) => ns.target,
            NdpMessage::Advertisement(na) => na.target,
        }
    }
}

impl fmt::Display for NdpMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lla = |m: &Option<Mac>| m.map_or_else(|| "none".to_string(), |m| m.to_string());
        match self {
            NdpMessage::Solicitation(ns) => write!(f, "ns target {} slla {}", ns.target, lla(&ns.source_lla)),
            NdpMessage::Advertisement(na) => {
                let flags: String = [(na.router, 'R'), (na.solicited, 'S'), (na.override_flag, 'O')]
                    .iter()
                    .filter_map(|&(on, c)| on.then_some(c))
                    .collect();
                let flags = if flags.is_empty() { "-".to_string() } else { flags };
                write!(f, "na target {} flags {flags} tlla {}", na.target, lla(&na.target_lla))
            }
        }
    }
}

/// RFC 4443 §2.3: one's complement sum over the pseudo-header (source,
/// destination, upper-layer length, next header) and the ICMPv6 message, with
/// the message's checksum field taken as it is (zero it to compute one; a
/// correct message sums to 0).
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = match pair {
                [a, b] => u16::from_be_bytes([*a, *b]),
                [a] => u16::from_be_bytes([*a, 0]),
                _ => 0,
            };
            sum += u64::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    // Message length (at most 65535 here) as the pseudo-header's 32-bit field.
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Decodes the bytes after the Ethernet header.
pub(super) fn decode(bytes: &[u8]) -> Result<(Ipv6Header, NdpMessage), DecodeError> {
    let h: [u8; IPV6_HEADER_LEN] = take(bytes, 0, "IPv6 header")?;
    let version = h[0] >> 4;
    if version != 6 {
        return Err(DecodeError::BadIpVersion(version));
    }
    let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    // Extension headers are not followed: neighbor discovery messages carry none.
    if h[6] != NEXT_HEADER_ICMPV6 {
        return Err(DecodeError::NotIcmpv6(h[6]));
    }
    let addr = |at: usize| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&h[at..at + 16]);
        Ipv6Addr::from(o)
    };
    let ip = Ipv6Header { src: addr(8), dst: addr(24), hop_limit: h[7] };
    let body = bytes
        .get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len)
        .ok_or(DecodeError::Truncated {
            what: "IPv6 payload",
            need: IPV6_HEADER_LEN + payload_len,
            have: bytes.len(),
        })?;
    let fixed: [u8; ND_FIXED_LEN] = take(body, 0, "neighbor discovery message")?;
    if fixed[0] != TYPE_NS && fixed[0] != TYPE_NA {
        return Err(DecodeError::NotNdp(fixed[0]));
    }
    if ip.hop_limit != 255 {
        return Err(DecodeError::BadHopLimit(ip.hop_limit));
    }
    if fixed[1] != 0 {
        return Err(DecodeError::BadIcmpv6Code(fixed[1]));
    }
    if icmpv6_checksum(&ip.src, &ip.dst, body) != 0 {
        let mut zeroed = body.to_vec();
        zeroed[2] = 0;
        zeroed[3] = 0;
        return Err(DecodeError::BadChecksum {
            found: u16::from_be_bytes([fixed[2], fixed[3]]),
            computed: icmpv6_checksum(&ip.src, &ip.dst, &zeroed),
        });
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&fixed[8..24]);
    let target = Ipv6Addr::from(t);
    if target.is_multicast() {
        return Err(DecodeError::MulticastTarget(target));
    }
    let wanted = if fixed[0] == TYPE_NS { OPT_SOURCE_LLA } else { OPT_TARGET_LLA };
    let lla = link_layer_option(&body[ND_FIXED_LEN..], wanted)?;
    let msg = if fixed[0] == TYPE_NS {
        NdpMessage::Solicitation(NeighborSolicitation { target, source_lla: lla })
    } else {
        NdpMessage::Advertisement(NeighborAdvertisement {
            router: fixed[4] & 0x80 != 0,
            solicited: fixed[4] & 0x40 != 0,
            override_flag: fixed[4] & 0x20 != 0,
            target,
            target_lla: lla,
        })
    };
    Ok((ip, msg))
}

/// Walks the options (RFC 4861 §4.6): every option must have a non-zero
/// length that stays inside the message, or the whole message is invalid.
/// Returns the first Ethernet-sized link-layer address option of type `wanted`.
fn link_layer_option(mut options: &[u8], wanted: u8) -> Result<Option<Mac>, DecodeError> {
    let mut found = None;
    while !options.is_empty() {
        let [kind, units] = take::<2>(options, 0, "neighbor discovery option")?;
        let len = usize::from(units) * 8;
        if len == 0 || len > options.len() {
            return Err(DecodeError::BadOption);
        }
        if kind == wanted && units == 1 && found.is_none() {
            let mut m = [0u8; 6];
            m.copy_from_slice(&options[2..8]);
            found = Some(Mac(m));
        }
        options = &options[len..];
    }
    Ok(found)
}

pub(super) fn encode_into(ip: &Ipv6Header, msg: &NdpMessage, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(32);
    let (kind, flags, target, lla) = match msg {
        NdpMessage::Solicitation(ns) => (TYPE_NS, 0u8, ns.target, ns.source_lla.map(|m| (OPT_SOURCE_LLA, m))),
        NdpMessage::Advertisement(na) => {
            let flags = (u8::from(na.router) << 7) | (u8::from(na.solicited) << 6) | (u8::from(na.override_flag) << 5);
            (TYPE_NA, flags, na.target, na.target_lla.map(|m| (OPT_TARGET_LLA, m)))
        }
    };
    body.extend_from_slice(&[kind, 0, 0, 0, flags, 0, 0, 0]);
    body.extend_from_slice(&target.octets());
    if let Some((opt, mac)) = lla {
        body.extend_from_slice(&[opt, 1]);
        body.extend_from_slice(&mac.0);
    }
    let sum = icmpv6_checksum(&ip.src, &ip.dst, &body);
    body[2..4].copy_from_slice(&sum.to_be_bytes());

    out.extend_from_slice(&[0x60, 0, 0, 0]);
    // An ND message is at most 32 bytes here, far below u16::MAX.
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&[NEXT_HEADER_ICMPV6, ip.hop_limit]);
    out.extend_from_slice(&ip.src.octets());
    out.extend_from_slice(&ip.dst.octets());
    out.extend_from_slice(&body);
}
