//! Wire format of membership datagrams: pure encode/decode, typed errors.
//!
//! Hand-written rather than serde-based because the format is tiny and fixed,
//! every length must be bounded before allocation (datagrams come from the
//! network), and the HMAC must cover the exact bytes on the wire.
//!
//! ```text
//! datagram = magic "FLBM" | version u8 (1) | flags u8 (bit 0: tagged) | kind u8
//!          | sender name (u8 length + UTF-8) | boot u64 | seq u64 | timestamp_ms u64
//!          | body (per kind) | [HMAC-SHA256 tag, 32 bytes, when tagged]
//! ```
//! Integers are big-endian. The tag covers every byte before it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const MAGIC: [u8; 4] = *b"FLBM";
pub const VERSION: u8 = 1;
/// Largest datagram sent or accepted: below a 1500-byte MTU with IPv6 and UDP
/// headers, so no datagram is ever fragmented (one lost fragment loses it all).
pub const MAX_DATAGRAM: usize = 1400;
/// Kubernetes node names are DNS subdomains: at most 253 characters.
pub const MAX_NAME: usize = 253;
/// Largest member metadata; with the largest name and header, one record still
/// fits in one datagram.
pub const MAX_META: usize = 512;
pub const TAG_LEN: usize = 32;

const FLAG_TAGGED: u8 = 1;

/// Liveness of a member as recorded in a view. At equal incarnation a later
/// variant wins (Dead over Alive, Left over Dead), as in SWIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Alive,
    Dead,
    Left,
}

impl Status {
    fn code(self) -> u8 {
        match self {
            Status::Alive => 0,
            Status::Dead => 1,
            Status::Left => 2,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        match code {
            0 => Ok(Status::Alive),
            1 => Ok(Status::Dead),
            2 => Ok(Status::Left),
            other => Err(DecodeError::BadStatus(other)),
        }
    }
}

/// One member as known by some node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub incarnation: u64,
    pub status: Status,
    pub addr: SocketAddr,
    pub meta: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Sent every heartbeat interval to the sender's ring successors.
    /// `digest` summarises the sender's live set (anti-entropy).
    Heartbeat { incarnation: u64, digest: u64 },
    /// "This member is alive": sent by a member about itself on join,
    /// incarnation change and refutation. `want_sync` asks for a full view.
    Alive { record: Record, want_sync: bool },
    /// "This member was found dead" (broadcast by the watcher that found it).
    Dead { name: String, incarnation: u64 },
    /// Graceful departure of the sender; every receiver answers `Ack { nonce }`.
    Leave { incarnation: u64, nonce: u64 },
    Ping { nonce: u64 },
    /// Asks the receiver to ping `target` and relay the ack (SWIM indirect probe).
    PingReq { nonce: u64, target: String, addr: SocketAddr },
    Ack { nonce: u64 },
    /// Part or all of the sender's view. `reply` asks the receiver for its own.
    Sync { records: Vec<Record>, reply: bool },
}

impl Message {
    fn kind(&self) -> u8 {
        match self {
            Message::Heartbeat { .. } => 1,
            Message::Alive { .. } => 2,
            Message::Dead { .. } => 3,
            Message::Leave { .. } => 4,
            Message::Ping { .. } => 5,
            Message::PingReq { .. } => 6,
            Message::Ack { .. } => 7,
            Message::Sync { .. } => 8,
        }
    }
}

/// Who sent a datagram and when. `boot` identifies the sending process (its
/// first incarnation) and `seq` numbers its datagrams: together they let a
/// receiver refuse replays (see `replay`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub sender: String,
    pub boot: u64,
    pub seq: u64,
    pub timestamp_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub header: Header,
    pub msg: Message,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("datagram of {0} bytes is larger than {MAX_DATAGRAM}")]
    Oversize(usize),
    #[error("datagram ends inside {0}")]
    Truncated(&'static str),
    #[error("not a ferrolb membership datagram (bad magic)")]
    BadMagic,
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("unknown flags {0:#04x}")]
    UnknownFlags(u8),
    #[error("{0} is empty")]
    EmptyName(&'static str),
    #[error("{0} is longer than {MAX_NAME} bytes")]
    NameTooLong(&'static str),
    #[error("{0} is not UTF-8")]
    NameNotUtf8(&'static str),
    #[error("metadata of {0} bytes is larger than {MAX_META}")]
    MetaTooLong(usize),
    #[error("unknown address family {0}")]
    BadAddressFamily(u8),
    #[error("unknown member status {0}")]
    BadStatus(u8),
    #[error("{0} bytes after the message")]
    TrailingBytes(usize),
    #[error("datagram is not authenticated but a key is configured")]
    MissingTag,
    #[error("datagram is authenticated but no key is configured")]
    UnexpectedTag,
    #[error("authentication tag does not match")]
    BadTag,
}

impl DecodeError {
    /// Short label for the rejected-datagrams metric.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Oversize(_) => "oversize",
            DecodeError::MissingTag | DecodeError::UnexpectedTag | DecodeError::BadTag => "auth",
            DecodeError::BadMagic | DecodeError::UnsupportedVersion(_) => "foreign",
            _ => "malformed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("name of {0} bytes is empty or longer than {MAX_NAME}")]
    BadName(usize),
    #[error("metadata of {0} bytes is larger than {MAX_META}")]
    MetaTooLong(usize),
    #[error("encoded message of {0} bytes is larger than {MAX_DATAGRAM}")]
    Oversize(usize),
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8; 32]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail for 32 bytes.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Encodes one datagram; tagged with HMAC-SHA256 when `key` is given.
pub fn encode(env: &Envelope, key: Option<&[u8; 32]>) -> Result<Vec<u8>, EncodeError> {
    let mut w = Vec::with_capacity(256);
    w.extend_from_slice(&MAGIC);
    w.push(VERSION);
    w.push(if key.is_some() { FLAG_TAGGED } else { 0 });
    w.push(env.msg.kind());
    put_name(&mut w, &env.header.sender)?;
    put_u64(&mut w, env.header.boot);
    put_u64(&mut w, env.header.seq);
    put_u64(&mut w, env.header.timestamp_ms);
    match &env.msg {
        Message::Heartbeat { incarnation, digest } => {
            put_u64(&mut w, *incarnation);
            put_u64(&mut w, *digest);
        }
        Message::Alive { record, want_sync } => {
            w.push(u8::from(*want_sync));
            put_record(&mut w, record)?;
        }
        Message::Dead { name, incarnation } => {
            put_name(&mut w, name)?;
            put_u64(&mut w, *incarnation);
        }
        Message::Leave { incarnation, nonce } => {
            put_u64(&mut w, *incarnation);
            put_u64(&mut w, *nonce);
        }
        Message::Ping { nonce } | Message::Ack { nonce } => put_u64(&mut w, *nonce),
        Message::PingReq { nonce, target, addr } => {
            put_u64(&mut w, *nonce);
            put_name(&mut w, target)?;
            put_addr(&mut w, addr);
        }
        Message::Sync { records, reply } => {
            w.push(u8::from(*reply));
            let count = u16::try_from(records.len()).map_err(|_| EncodeError::Oversize(usize::MAX))?;
            w.extend_from_slice(&count.to_be_bytes());
            for r in records {
                put_record(&mut w, r)?;
            }
        }
    }
    if let Some(key) = key {
        let mut m = mac(key);
        m.update(&w);
        w.extend_from_slice(&m.finalize().into_bytes());
    }
    if w.len() > MAX_DATAGRAM {
        return Err(EncodeError::Oversize(w.len()));
    }
    Ok(w)
}

/// Splits a message into messages that each encode within `MAX_DATAGRAM`.
/// Only `Sync` can grow with the cluster; its records are independent, so a
/// view travels as several Syncs (`reply` kept on the first only, so the peer
/// answers once).
pub fn split(sender: &str, msg: Message) -> Vec<Message> {
    let Message::Sync { records, reply } = msg else {
        return vec![msg];
    };
    let fixed = 7 + 1 + sender.len() + 24 + 3 + TAG_LEN;
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut size = fixed;
    for r in records {
        let len = record_len(&r);
        if !chunk.is_empty() && size + len > MAX_DATAGRAM {
            out.push(std::mem::take(&mut chunk));
            size = fixed;
        }
        size += len;
        chunk.push(r);
    }
    if !chunk.is_empty() || out.is_empty() {
        out.push(chunk);
    }
    out.into_iter()
        .enumerate()
        .map(|(i, records)| Message::Sync { records, reply: reply && i == 0 })
        .collect()
}

fn record_len(r: &Record) -> usize {
    let addr = if r.addr.is_ipv4() { 1 + 4 + 2 } else { 1 + 16 + 2 };
    1 + r.name.len() + 8 + 1 + addr + 2 + r.meta.len()
}

fn put_u64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_be_bytes());
}

fn put_name(w: &mut Vec<u8>, name: &str) -> Result<(), EncodeError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(EncodeError::BadName(name.len()));
    }
    w.push(name.len() as u8);
    w.extend_from_slice(name.as_bytes());
    Ok(())
}

fn put_addr(w: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            w.push(4);
            w.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            w.push(6);
            w.extend_from_slice(&ip.octets());
        }
    }
    w.extend_from_slice(&addr.port().to_be_bytes());
}

fn put_record(w: &mut Vec<u8>, r: &Record) -> Result<(), EncodeError> {
    if r.meta.len() > MAX_META {
        return Err(EncodeError::MetaTooLong(r.meta.len()));
    }
    put_name(w, &r.name)?;
    put_u64(w, r.incarnation);
    w.push(r.status.code());
    put_addr(w, &r.addr);
    w.extend_from_slice(&(r.meta.len() as u16).to_be_bytes());
    w.extend_from_slice(&r.meta);
    Ok(())
}

/// Decodes and authenticates one datagram. With a key, only datagrams tagged
/// with that key are accepted; without one, only untagged datagrams.
pub fn decode(buf: &[u8], key: Option<&[u8; 32]>) -> Result<Envelope, DecodeError> {
    if buf.len() > MAX_DATAGRAM {
        return Err(DecodeError::Oversize(buf.len()));
    }
    let mut r = Reader { buf, pos: 0 };
    if r.take(4, "magic")? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let flags = r.u8("flags")?;
    if flags & !FLAG_TAGGED != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let tagged = flags & FLAG_TAGGED != 0;
    // Authenticate before parsing further: nothing from an unauthenticated
    // sender reaches the body parser.
    match (key, tagged) {
        (Some(key), true) => {
            let body_end = buf.len().checked_sub(TAG_LEN).filter(|&e| e >= r.pos).ok_or(DecodeError::Truncated("tag"))?;
            let mut m = mac(key);
            m.update(&buf[..body_end]);
            m.verify_slice(&buf[body_end..]).map_err(|_| DecodeError::BadTag)?;
            r.buf = &buf[..body_end];
        }
        (Some(_), false) => return Err(DecodeError::MissingTag),
        (None, true) => return Err(DecodeError::UnexpectedTag),
        (None, false) => {}
    }
    let kind = r.u8("kind")?;
    let header = Header {
        sender: r.name("sender")?,
        boot: r.u64("boot")?,
        seq: r.u64("seq")?,
        timestamp_ms: r.u64("timestamp")?,
    };
    let msg = match kind {
        1 => Message::Heartbeat { incarnation: r.u64("incarnation")?, digest: r.u64("digest")? },
        2 => {
            let want_sync = r.bool("want_sync")?;
            Message::Alive { record: r.record()?, want_sync }
        }
        3 => Message::Dead { name: r.name("member name")?, incarnation: r.u64("incarnation")? },
        4 => Message::Leave { incarnation: r.u64("incarnation")?, nonce: r.u64("nonce")? },
        5 => Message::Ping { nonce: r.u64("nonce")? },
        6 => Message::PingReq { nonce: r.u64("nonce")?, target: r.name("target")?, addr: r.addr()? },
        7 => Message::Ack { nonce: r.u64("nonce")? },
        8 => {
            let reply = r.bool("reply")?;
            let count = r.u16("record count")?;
            // Each record takes at least 16 bytes, so `count` is bounded by
            // the datagram size before any allocation.
            let mut records = Vec::with_capacity(usize::from(count).min(MAX_DATAGRAM / 16));
            for _ in 0..count {
                records.push(r.record()?);
            }
            Message::Sync { records, reply }
        }
        other => return Err(DecodeError::UnknownKind(other)),
    };
    let rest = r.buf.len() - r.pos;
    if rest != 0 {
        return Err(DecodeError::TrailingBytes(rest));
    }
    Ok(Envelope { header, msg })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(DecodeError::Truncated(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.u8(what)? != 0)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }

    fn name(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let len = usize::from(self.u8(what)?);
        if len == 0 {
            return Err(DecodeError::EmptyName(what));
        }
        if len > MAX_NAME {
            return Err(DecodeError::NameTooLong(what));
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NameNotUtf8(what))
    }

    fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        let ip = match self.u8("address family")? {
            4 => {
                let mut a = [0u8; 4];
                a.copy_from_slice(self.take(4, "IPv4 address")?);
                IpAddr::V4(Ipv4Addr::from(a))
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16, "IPv6 address")?);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            other => return Err(DecodeError::BadAddressFamily(other)),
        };
        Ok(SocketAddr::new(ip, self.u16("port")?))
    }

    fn record(&mut self) -> Result<Record, DecodeError> {
        let name = self.name("member name")?;
        let incarnation = self.u64("incarnation")?;
        let status = Status::from_code(self.u8("status")?)?;
        let addr = self.addr()?;
        let len = usize::from(self.u16("meta length")?);
        if len > MAX_META {
            return Err(DecodeError::MetaTooLong(len));
        }
        let meta = self.take(len, "meta")?.to_vec();
        Ok(Record { name, incarnation, status, addr, meta })
    }
}

#[cfg(test)]
mod tests;
