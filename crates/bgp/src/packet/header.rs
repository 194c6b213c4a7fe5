//! The 19-byte message header, checked by hand as RFC 4271 §6.1 words it:
//! netgauze checks the marker and the 19..4096 range but not the minimum
//! length of each message type, and its errors carry byte offsets where the
//! NOTIFICATION needs the offending length or type as data.

use super::DecodeError;

pub const HEADER_LEN: usize = 19;
/// RFC 4271 §4.1; extended messages (RFC 8654) are not negotiated.
pub const MAX_MESSAGE_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Open,
            2 => Self::Update,
            3 => Self::Notification,
            4 => Self::Keepalive,
            5 => Self::RouteRefresh,
            _ => return None,
        })
    }

    /// Smallest valid length of the whole message (RFC 4271 §4, RFC 2918 §3).
    fn min_len(self) -> usize {
        match self {
            Self::Open => 29,
            Self::Update => 23,
            Self::Notification => 21,
            Self::Keepalive => 19,
            Self::RouteRefresh => 23,
        }
    }

    /// Message types with a fixed length.
    fn fixed_len(self) -> Option<usize> {
        match self {
            Self::Keepalive => Some(19),
            Self::RouteRefresh => Some(23),
            _ => None,
        }
    }
}

/// Checks the header at the start of `buf` (at least 19 bytes) and returns
/// the total message length and its type.
pub fn check(buf: &[u8], max_len: usize) -> Result<(usize, MessageType), DecodeError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Err(DecodeError::Truncated);
    };
    if head[..16].iter().any(|&b| b != 0xff) {
        return Err(DecodeError::BadMarker);
    }
    let length = u16::from_be_bytes([head[16], head[17]]);
    let len = usize::from(length);
    if !(HEADER_LEN..=max_len).contains(&len) {
        return Err(DecodeError::BadLength { length });
    }
    let Some(kind) = MessageType::from_u8(head[18]) else {
        return Err(DecodeError::BadType { kind: head[18] });
    };
    if len < kind.min_len() || kind.fixed_len().is_some_and(|f| f != len) {
        return Err(DecodeError::BadLength { length });
    }
    Ok((len, kind))
}

/// Prepends a header to `body`. Callers keep bodies within the maximum.
pub fn frame(kind: MessageType, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
    out.push(kind as u8);
    out.extend_from_slice(body);
    out
}
