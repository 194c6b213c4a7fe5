//! ARP over Ethernet for IPv4 (RFC 826), the only combination on the wire here.

use std::fmt;
use std::net::Ipv4Addr;

use super::{DecodeError, Mac, take};

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;
pub(crate) const ARP_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
}

/// An Ethernet/IPv4 ARP packet (the 28 bytes after the Ethernet header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub op: ArpOp,
    /// sender hardware / protocol address
    pub sha: Mac,
    pub spa: Ipv4Addr,
    /// target hardware / protocol address
    pub tha: Mac,
    pub tpa: Ipv4Addr,
}

impl ArpPacket {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: [u8; ARP_LEN] = take(bytes, 0, "ARP packet")?;
        let htype = u16::from_be_bytes([b[0], b[1]]);
        if htype != HTYPE_ETHERNET {
            return Err(DecodeError::BadHardwareType(htype));
        }
        let ptype = u16::from_be_bytes([b[2], b[3]]);
        if ptype != PTYPE_IPV4 {
            return Err(DecodeError::BadProtocolType(ptype));
        }
        if (b[4], b[5]) != (6, 4) {
            return Err(DecodeError::BadAddressLengths { hlen: b[4], plen: b[5] });
        }
        let op = match u16::from_be_bytes([b[6], b[7]]) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            other => return Err(DecodeError::BadArpOperation(other)),
        };
        let mac = |at: usize| {
            let mut m = [0; 6];
            m.copy_from_slice(&b[at..at + 6]);
            Mac(m)
        };
        let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
        Ok(ArpPacket { op, sha: mac(8), spa: ip(14), tha: mac(18), tpa: ip(24) })
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        out.extend_from_slice(&PTYPE_IPV4.to_be_bytes());
        out.extend_from_slice(&[6, 4]);
        let op: u16 = match self.op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        };
        out.extend_from_slice(&op.to_be_bytes());
        out.extend_from_slice(&self.sha.0);
        out.extend_from_slice(&self.spa.octets());
        out.extend_from_slice(&self.tha.0);
        out.extend_from_slice(&self.tpa.octets());
    }
}

impl fmt::Display for ArpPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            ArpOp::Request => "request",
            ArpOp::Reply => "reply",
        };
        write!(f, "arp {op} sha {} spa {} tha {} tpa {}", self.sha, self.spa, self.tha, self.tpa)
    }
}
