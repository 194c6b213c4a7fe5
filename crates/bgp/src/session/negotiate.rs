//! OPEN checks and the parameters both sides agree on (RFC 4271 §6.2,
//! RFC 4760, RFC 5492, RFC 6793, RFC 4724).

use std::net::Ipv4Addr;

use crate::packet::notification::{
    OPEN_BAD_BGP_ID, OPEN_BAD_PEER_AS, OPEN_MESSAGE_ERROR, OPEN_UNACCEPTABLE_HOLD_TIME,
    OPEN_UNSUPPORTED_VERSION,
};
use crate::packet::{Capabilities, Family, GracefulRestart, Notification, Open};

/// Which AS the peer must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAsn {
    Exact(u32),
    /// BGPPeer dynamicASN "internal": the peer's AS must equal ours.
    Internal,
    /// BGPPeer dynamicASN "external": the peer's AS must differ from ours.
    External,
    /// Any AS (used by tests and by unnumbered peers of unknown AS).
    Any,
}

impl PeerAsn {
    fn accepts(self, local: u32, peer: u32) -> bool {
        match self {
            PeerAsn::Exact(a) => a == peer,
            PeerAsn::Internal => peer == local,
            PeerAsn::External => peer != local,
            PeerAsn::Any => true,
        }
    }
}

/// What the session agreed on, reported with session up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_asn: u32,
    pub peer_router_id: Ipv4Addr,
    /// Seconds; 0 means no hold timer and no keepalives.
    pub hold_time: u16,
    pub keepalive: u16,
    pub four_octet_as: bool,
    /// Families both sides announced (IPv4 unicast when the peer sent no
    /// multiprotocol capability, RFC 4760 §8).
    pub families: Vec<Family>,
    pub route_refresh: bool,
    /// The peer's graceful restart capability, when both sides sent one.
    pub graceful_restart: Option<GracefulRestart>,
    pub ibgp: bool,
}

pub struct Local<'a> {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    pub keepalive: Option<u16>,
    pub peer_asn: PeerAsn,
    pub caps: &'a Capabilities,
}

/// Checks the peer's OPEN; the error is the NOTIFICATION to send.
pub fn negotiate(local: &Local<'_>, open: &Open) -> Result<Negotiated, Notification> {
    if open.version != 4 {
        return Err(Notification::new(
            OPEN_MESSAGE_ERROR,
            OPEN_UNSUPPORTED_VERSION,
            vec![0, 4],
        ));
    }
    let peer_asn = open.asn();
    if !local.peer_asn.accepts(local.asn, peer_asn) {
        // RFC 4271 §6.2 has no data for Bad Peer AS; the 2-octet field is
        // what most implementations put there.
        return Err(Notification::new(
            OPEN_MESSAGE_ERROR,
            OPEN_BAD_PEER_AS,
            open.my_as.to_be_bytes().to_vec(),
        ));
    }
    if matches!(open.hold_time, 1 | 2) {
        return Err(Notification::new(
            OPEN_MESSAGE_ERROR,
            OPEN_UNACCEPTABLE_HOLD_TIME,
            vec![],
        ));
    }
    let ibgp = peer_asn == local.asn;
    // RFC 6286 §2.2: zero is invalid, and an internal peer may not share ours.
    if open.router_id.is_unspecified() || (ibgp && open.router_id == local.router_id) {
        return Err(Notification::new(
            OPEN_MESSAGE_ERROR,
            OPEN_BAD_BGP_ID,
            open.router_id.octets().to_vec(),
        ));
    }
    let hold_time = local.hold_time.min(open.hold_time);
    let keepalive = match (hold_time, local.keepalive) {
        (0, _) => 0,
        (h, Some(k)) if k > 0 => k.min(h / 3).max(1),
        (h, _) => (h / 3).max(1),
    };
    let theirs: Vec<Family> = if open.caps.families.is_empty() {
        vec![Family::Ipv4Unicast]
    } else {
        open.caps.families.clone()
    };
    let ours: &[Family] = if local.caps.families.is_empty() {
        &[Family::Ipv4Unicast]
    } else {
        &local.caps.families
    };
    let families = ours
        .iter()
        .copied()
        .filter(|f| theirs.contains(f))
        .collect();
    Ok(Negotiated {
        peer_asn,
        peer_router_id: open.router_id,
        hold_time,
        keepalive,
        four_octet_as: open.caps.four_octet_as.is_some() && local.caps.four_octet_as.is_some(),
        families,
        route_refresh: open.caps.route_refresh && local.caps.route_refresh,
        graceful_restart: if local.caps.graceful_restart.is_some() {
            open.caps.graceful_restart.clone()
        } else {
            None
        },
        ibgp,
    })
}
