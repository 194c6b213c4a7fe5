//! NOTIFICATION as the raw (code, subcode, data) triple of RFC 4271 §4.5.
//! Hand-written: netgauze models it as dozens of typed variants, while the
//! session only sends and logs the triple, and must understand codes that
//! no library knows yet.

use super::header::{MessageType, frame};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

// Codes and subcodes used by the engine (RFC 4271 §4.5, RFC 4486).
pub const MESSAGE_HEADER_ERROR: u8 = 1;
pub const OPEN_MESSAGE_ERROR: u8 = 2;
pub const UPDATE_MESSAGE_ERROR: u8 = 3;
pub const HOLD_TIMER_EXPIRED: u8 = 4;
pub const FSM_ERROR: u8 = 5;
pub const CEASE: u8 = 6;

pub const OPEN_UNSUPPORTED_VERSION: u8 = 1;
pub const OPEN_BAD_PEER_AS: u8 = 2;
pub const OPEN_BAD_BGP_ID: u8 = 3;
pub const OPEN_UNACCEPTABLE_HOLD_TIME: u8 = 6;

pub const CEASE_ADMIN_SHUTDOWN: u8 = 2;
pub const CEASE_PEER_DECONFIGURED: u8 = 3;
pub const CEASE_ADMIN_RESET: u8 = 4;
pub const CEASE_CONNECTION_REJECTED: u8 = 5;
pub const CEASE_OTHER_CONFIG_CHANGE: u8 = 6;
pub const CEASE_COLLISION: u8 = 7;
/// RFC 9384: BFD declared the path down.
pub const CEASE_BFD_DOWN: u8 = 10;

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self {
            code,
            subcode,
            data,
        }
    }

    /// The body after the header (at least two bytes: the header check
    /// enforces the minimum length of 21).
    pub fn decode_body(body: &[u8]) -> Self {
        Self {
            code: body.first().copied().unwrap_or(0),
            subcode: body.get(1).copied().unwrap_or(0),
            data: body.get(2..).unwrap_or(&[]).to_vec(),
        }
    }

    /// The encoded message; data beyond the maximum message size is cut.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = vec![self.code, self.subcode];
        let room = super::MAX_MESSAGE_LEN - super::HEADER_LEN - 2;
        body.extend_from_slice(&self.data[..self.data.len().min(room)]);
        frame(MessageType::Notification, &body)
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match (self.code, self.subcode) {
            (1, 1) => "connection not synchronized",
            (1, 2) => "bad message length",
            (1, 3) => "bad message type",
            (1, _) => "message header error",
            (2, 1) => "unsupported version number",
            (2, 2) => "bad peer AS",
            (2, 3) => "bad BGP identifier",
            (2, 4) => "unsupported optional parameter",
            (2, 6) => "unacceptable hold time",
            (2, 7) => "unsupported capability",
            (2, _) => "OPEN message error",
            (3, 1) => "malformed attribute list",
            (3, 2) => "unrecognized well-known attribute",
            (3, 3) => "missing well-known attribute",
            (3, 4) => "attribute flags error",
            (3, 5) => "attribute length error",
            (3, 6) => "invalid ORIGIN attribute",
            (3, 8) => "invalid NEXT_HOP attribute",
            (3, 9) => "optional attribute error",
            (3, 10) => "invalid network field",
            (3, 11) => "malformed AS_PATH",
            (3, _) => "UPDATE message error",
            (4, _) => "hold timer expired",
            (5, _) => "finite state machine error",
            (6, 2) => "cease: administrative shutdown",
            (6, 3) => "cease: peer de-configured",
            (6, 4) => "cease: administrative reset",
            (6, 5) => "cease: connection rejected",
            (6, 6) => "cease: other configuration change",
            (6, 7) => "cease: connection collision resolution",
            (6, _) => "cease",
            (7, _) => "route refresh message error",
            _ => "unknown error",
        };
        write!(f, "{}/{} ({name})", self.code, self.subcode)?;
        if !self.data.is_empty() {
            f.write_str(" data ")?;
            for b in &self.data {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}
