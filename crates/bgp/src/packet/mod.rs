//! BGP messages on the wire.
//!
//! The body of every message is encoded and decoded by `netgauze-bgp-pkt`.
//! Written here by hand, each for a reason given where it lives:
//! - the header checks of RFC 4271 §6.1 (netgauze does not check the
//!   per-type minimum lengths and reports its own offsets rather than the
//!   NOTIFICATION data the RFC asks for), see [`header`];
//! - the scan for unrecognised well-known attributes (netgauze accepts any
//!   unknown attribute, whatever its flags), see [`update::scan_attributes`];
//! - NOTIFICATION as a raw (code, subcode, data) triple, see [`notification`].

pub mod error;
pub mod header;
pub mod notification;
pub mod open;
pub mod update;

#[cfg(test)]
mod tests;

use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::iana::RouteRefreshSubcode;
use netgauze_bgp_pkt::route_refresh::BgpRouteRefreshMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

pub use error::{DecodeError, EncodeError};
pub use header::{HEADER_LEN, MAX_MESSAGE_LEN, MessageType};
pub use notification::Notification;
pub use open::{Capabilities, GracefulRestart, Open};
pub use update::{ReceivedUpdate, RouteAttrs, encode_announce, encode_end_of_rib, encode_withdraw};

/// The address families this engine speaks (unicast only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    pub fn of(net: &ipnet::IpNet) -> Family {
        match net {
            ipnet::IpNet::V4(_) => Family::Ipv4Unicast,
            ipnet::IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }

    pub(crate) fn to_ng(self) -> AddressType {
        match self {
            Family::Ipv4Unicast => AddressType::Ipv4Unicast,
            Family::Ipv6Unicast => AddressType::Ipv6Unicast,
        }
    }

    pub(crate) fn from_ng(t: AddressType) -> Option<Family> {
        match t {
            AddressType::Ipv4Unicast => Some(Family::Ipv4Unicast),
            AddressType::Ipv6Unicast => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

/// A decoded message, reduced to what the session needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(ReceivedUpdate),
    Notification(Notification),
    Keepalive,
    /// A ROUTE-REFRESH request; `None` for an address family we do not speak.
    RouteRefresh(Option<Family>),
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Open(_) => "OPEN",
            Message::Update(_) => "UPDATE",
            Message::Notification(_) => "NOTIFICATION",
            Message::Keepalive => "KEEPALIVE",
            Message::RouteRefresh(_) => "ROUTE-REFRESH",
        }
    }
}

/// Decodes one whole message (header included). `asn4` tells whether
/// AS_PATH carries 4-octet AS numbers (both sides sent capability 65).
pub fn decode(buf: &[u8], asn4: bool) -> Result<Message, DecodeError> {
    let (len, kind) = header::check(buf, MAX_MESSAGE_LEN)?;
    if buf.len() != len {
        return Err(DecodeError::BadLength { length: len as u16 });
    }
    match kind {
        // Decoded by hand (see notification.rs): netgauze's typed variants
        // would have to be mapped back to the raw triple.
        MessageType::Notification => {
            return Ok(Message::Notification(Notification::decode_body(
                &buf[HEADER_LEN..],
            )));
        }
        MessageType::Keepalive => return Ok(Message::Keepalive),
        MessageType::Update => update::scan_attributes(&buf[HEADER_LEN..])?,
        MessageType::Open | MessageType::RouteRefresh => {}
    }
    let mut ctx = BgpParsingContext::asn2_default();
    ctx.set_asn4(asn4);
    let msg = BgpMessage::parse(&mut SliceReader::new(buf), &mut ctx)
        .map_err(DecodeError::from_netgauze)?;
    Ok(match msg {
        BgpMessage::Open(o) => Message::Open(Open::from_ng(&o)),
        BgpMessage::Update(u) => Message::Update(ReceivedUpdate::from_ng(&u)),
        BgpMessage::Notification(_) | BgpMessage::KeepAlive => {
            // Handled above from the header type; netgauze cannot disagree.
            return Err(DecodeError::BadType {
                kind: buf[HEADER_LEN - 1],
            });
        }
        BgpMessage::RouteRefresh(r) => Message::RouteRefresh(Family::from_ng(r.address_type())),
    })
}

pub(crate) fn write_ng(msg: &BgpMessage) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(msg.len());
    msg.write(&mut out)
        .map_err(|e| EncodeError::Netgauze(format!("{e:?}")))?;
    if out.len() > MAX_MESSAGE_LEN {
        return Err(EncodeError::TooLong(out.len()));
    }
    Ok(out)
}

pub fn encode_keepalive() -> Vec<u8> {
    header::frame(MessageType::Keepalive, &[])
}

pub fn encode_route_refresh(family: Family) -> Result<Vec<u8>, EncodeError> {
    write_ng(&BgpMessage::RouteRefresh(BgpRouteRefreshMessage::new(
        family.to_ng(),
        RouteRefreshSubcode::NormalRequest,
    )))
}
