//! Decoding errors, each naming the NOTIFICATION (RFC 4271 §6, RFC 7606)
//! that the session sends in answer.

use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::notification::BgpNotificationMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpMessageParsingError;

use super::notification::{MESSAGE_HEADER_ERROR, Notification, UPDATE_MESSAGE_ERROR};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a header: only possible when a caller passes a
    /// short buffer (the framer waits for whole messages).
    #[error("truncated message")]
    Truncated,
    #[error("connection not synchronized (marker not all ones)")]
    BadMarker,
    #[error("bad message length {length}")]
    BadLength { length: u16 },
    #[error("bad message type {kind}")]
    BadType { kind: u8 },
    /// An attribute with the optional bit clear whose type we do not know
    /// (RFC 4271 §6.3: 3/2, data = the attribute).
    #[error("unrecognized well-known attribute type {code}")]
    UnrecognizedWellKnown { code: u8, attribute: Vec<u8> },
    /// The attribute list cannot be walked (lengths overrun it).
    #[error("malformed attribute list")]
    MalformedAttributeList,
    /// Any other body error found by netgauze, with the NOTIFICATION its
    /// own RFC mapping gives.
    #[error("{message}: answered with {notification}")]
    Body {
        message: String,
        notification: Notification,
    },
}

impl DecodeError {
    /// The NOTIFICATION to send for this error.
    pub fn notification(&self) -> Notification {
        match self {
            DecodeError::Truncated => Notification::new(MESSAGE_HEADER_ERROR, 2, vec![]),
            DecodeError::BadMarker => Notification::new(MESSAGE_HEADER_ERROR, 1, vec![]),
            DecodeError::BadLength { length } => {
                Notification::new(MESSAGE_HEADER_ERROR, 2, length.to_be_bytes().to_vec())
            }
            DecodeError::BadType { kind } => {
                Notification::new(MESSAGE_HEADER_ERROR, 3, vec![*kind])
            }
            DecodeError::UnrecognizedWellKnown { attribute, .. } => {
                Notification::new(UPDATE_MESSAGE_ERROR, 2, attribute.clone())
            }
            DecodeError::MalformedAttributeList => {
                Notification::new(UPDATE_MESSAGE_ERROR, 1, vec![])
            }
            DecodeError::Body { notification, .. } => notification.clone(),
        }
    }

    pub(crate) fn from_netgauze(err: BgpMessageParsingError) -> DecodeError {
        let message = err.to_string();
        let ng: BgpNotificationMessage = err.into();
        // netgauze writes its typed notification; reading the bytes back is
        // the one place where its variants and the raw triple meet.
        let notification = match super::write_ng(&BgpMessage::Notification(ng)) {
            Ok(bytes) => Notification::decode_body(&bytes[super::HEADER_LEN..]),
            Err(_) => Notification::new(MESSAGE_HEADER_ERROR, 0, vec![]),
        };
        DecodeError::Body {
            message,
            notification,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("netgauze cannot encode the message: {0}")]
    Netgauze(String),
    #[error("encoded message of {0} bytes exceeds the maximum of 4096")]
    TooLong(usize),
    #[error("prefix {0} cannot be encoded")]
    BadPrefix(String),
    #[error("next hop {next_hop} cannot carry {family} routes")]
    NextHopFamily {
        next_hop: std::net::IpAddr,
        family: super::Family,
    },
}
