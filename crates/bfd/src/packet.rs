//! BFD control packets (RFC 5880 §4.1, §4.2): pure encode and decode.
//!
//! The decoder applies the reception checks of RFC 5880 §6.8.6 that need no
//! session state (version, length against the A bit and the datagram,
//! detect multiplier, multipoint, discriminators); everything that needs the
//! session (the Your Discriminator match, authentication in use) is the
//! state machine's job. Hand-written: the format is 24 fixed bytes and no
//! maintained crate decodes it (holo-bfd's codec is not published apart
//! from its daemon).

use std::fmt;

pub const VERSION: u8 = 1;
/// Mandatory section length, and the minimum Length with the A bit clear.
pub const HEADER_LEN: usize = 24;
/// Minimum Length with the A bit set (§6.8.6): header plus Auth Type and Auth Len.
pub const MIN_LEN_WITH_AUTH: usize = HEADER_LEN + 2;

/// Session state as carried in the Sta field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(bits: u8) -> State {
        match bits & 0b11 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Diagnostic codes (§4.1); 9-31 are reserved but carried unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    Reserved(u8),
}

impl Diagnostic {
    pub fn from_code(code: u8) -> Diagnostic {
        match code & 0x1f {
            0 => Diagnostic::None,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            other => Diagnostic::Reserved(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Diagnostic::None => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Reserved(c) => c & 0x1f,
        }
    }

    /// The short names FRR prints (`show bfd peers`), and "reserved-N".
    pub fn name(self) -> String {
        match self {
            Diagnostic::None => "ok".into(),
            Diagnostic::ControlDetectionTimeExpired => "control-expired".into(),
            Diagnostic::EchoFunctionFailed => "echo-failed".into(),
            Diagnostic::NeighborSignaledSessionDown => "neighbor-down".into(),
            Diagnostic::ForwardingPlaneReset => "forwarding-reset".into(),
            Diagnostic::PathDown => "path-down".into(),
            Diagnostic::ConcatenatedPathDown => "concatenated-path-down".into(),
            Diagnostic::AdministrativelyDown => "administratively-down".into(),
            Diagnostic::ReverseConcatenatedPathDown => "reverse-concatenated-path-down".into(),
            Diagnostic::Reserved(c) => format!("reserved-{c}"),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Authentication types (§4.1); the section is parsed so a packet that uses
/// it is refused explicitly by the session (no authentication is configured
/// by a BFDProfile), never misread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthType {
    SimplePassword,
    KeyedMd5,
    MeticulousKeyedMd5,
    KeyedSha1,
    MeticulousKeyedSha1,
    Reserved(u8),
}

impl AuthType {
    fn from_code(code: u8) -> AuthType {
        match code {
            1 => AuthType::SimplePassword,
            2 => AuthType::KeyedMd5,
            3 => AuthType::MeticulousKeyedMd5,
            4 => AuthType::KeyedSha1,
            5 => AuthType::MeticulousKeyedSha1,
            other => AuthType::Reserved(other),
        }
    }

    fn code(self) -> u8 {
        match self {
            AuthType::SimplePassword => 1,
            AuthType::KeyedMd5 => 2,
            AuthType::MeticulousKeyedMd5 => 3,
            AuthType::KeyedSha1 => 4,
            AuthType::MeticulousKeyedSha1 => 5,
            AuthType::Reserved(c) => c,
        }
    }

    /// The Auth Len values §4.2-4.4 allow (whole section, type and length
    /// bytes included); reserved types have no format beyond the framing.
    fn valid_len(self, len: usize) -> bool {
        match self {
            // Type, Len, Key ID and a 1..16 byte password.
            AuthType::SimplePassword => (4..=19).contains(&len),
            AuthType::KeyedMd5 | AuthType::MeticulousKeyedMd5 => len == 24,
            AuthType::KeyedSha1 | AuthType::MeticulousKeyedSha1 => len == 28,
            AuthType::Reserved(_) => len >= 2,
        }
    }
}

/// The optional authentication section, kept raw after its framing checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authentication {
    pub auth_type: AuthType,
    /// Everything after Auth Type and Auth Len (Key ID, sequence, digest...).
    pub data: Vec<u8>,
}

/// One control packet. Intervals are in microseconds, as on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPacket {
    pub diag: Diagnostic,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    pub control_plane_independent: bool,
    pub demand: bool,
    pub multipoint: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
    pub auth: Option<Authentication>,
}

/// Why a datagram is not a usable control packet (RFC 5880 §6.8.6).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{len} bytes: shorter than the {HEADER_LEN}-byte mandatory section")]
    TooShort { len: usize },
    #[error("version {0}, not 1")]
    Version(u8),
    #[error("Length {length} below the minimum {min} (A bit {auth})")]
    LengthTooSmall { length: usize, min: usize, auth: bool },
    #[error("Length {length} beyond the {payload}-byte datagram")]
    LengthBeyondPayload { length: usize, payload: usize },
    #[error("Detect Mult is zero")]
    ZeroDetectMult,
    #[error("Multipoint (M) bit set")]
    Multipoint,
    #[error("My Discriminator is zero")]
    ZeroMyDiscriminator,
    #[error("Your Discriminator is zero in state {0}")]
    ZeroYourDiscriminator(State),
    #[error("Poll and Final both set")]
    PollAndFinal,
    #[error("authentication section of {auth_len} bytes does not fit the {room} bytes left")]
    AuthBeyondLength { auth_len: usize, room: usize },
    #[error("authentication type {auth_type:?} with Auth Len {auth_len}")]
    AuthLength { auth_type: AuthType, auth_len: usize },
}

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CPI: u8 = 0x08;
const FLAG_AUTH: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl ControlPacket {
    /// A plain packet: no flags, no authentication, multiplier 3, the slow
    /// one-second intervals of §6.8.3 and no echo.
    pub fn new(state: State, my_discriminator: u32, your_discriminator: u32) -> ControlPacket {
        ControlPacket {
            diag: Diagnostic::None,
            state,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            multipoint: false,
            detect_mult: 3,
            my_discriminator,
            your_discriminator,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 1_000_000,
            required_min_echo_rx_us: 0,
            auth: None,
        }
    }

    /// Decodes one UDP payload. Bytes past Length are ignored (§6.8.6 only
    /// refuses a Length larger than the payload).
    pub fn decode(payload: &[u8]) -> Result<ControlPacket, DecodeError> {
        if payload.len() < HEADER_LEN {
            return Err(DecodeError::TooShort { len: payload.len() });
        }
        let version = payload[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let flags = payload[1];
        let auth_bit = flags & FLAG_AUTH != 0;
        let length = usize::from(payload[3]);
        let min = if auth_bit { MIN_LEN_WITH_AUTH } else { HEADER_LEN };
        if length < min {
            return Err(DecodeError::LengthTooSmall { length, min, auth: auth_bit });
        }
        if length > payload.len() {
            return Err(DecodeError::LengthBeyondPayload { length, payload: payload.len() });
        }
        let detect_mult = payload[2];
        if detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if flags & FLAG_MULTIPOINT != 0 {
            return Err(DecodeError::Multipoint);
        }
        let state = State::from_bits(flags >> 6);
        let my_discriminator = be32(payload, 4);
        if my_discriminator == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        let your_discriminator = be32(payload, 8);
        if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(DecodeError::ZeroYourDiscriminator(state));
        }
        let poll = flags & FLAG_POLL != 0;
        let final_ = flags & FLAG_FINAL != 0;
        // §6.5: "A BFD Control packet MUST NOT have both the Poll (P) and
        // Final (F) bits set"; a receiver cannot tell which one was meant.
        if poll && final_ {
            return Err(DecodeError::PollAndFinal);
        }
        let auth = if auth_bit { Some(decode_auth(&payload[HEADER_LEN..length])?) } else { None };
        Ok(ControlPacket {
            diag: Diagnostic::from_code(payload[0]),
            state,
            poll,
            final_,
            control_plane_independent: flags & FLAG_CPI != 0,
            demand: flags & FLAG_DEMAND != 0,
            multipoint: false,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx_us: be32(payload, 12),
            required_min_rx_us: be32(payload, 16),
            required_min_echo_rx_us: be32(payload, 20),
            auth,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let auth_len = self.auth.as_ref().map_or(0, |a| 2 + a.data.len());
        let length = HEADER_LEN + auth_len;
        let mut out = Vec::with_capacity(length);
        out.push((VERSION << 5) | (self.diag.code() & 0x1f));
        let mut flags = (self.state as u8) << 6;
        for (set, bit) in [
            (self.poll, FLAG_POLL),
            (self.final_, FLAG_FINAL),
            (self.control_plane_independent, FLAG_CPI),
            (self.auth.is_some(), FLAG_AUTH),
            (self.demand, FLAG_DEMAND),
            (self.multipoint, FLAG_MULTIPOINT),
        ] {
            if set {
                flags |= bit;
            }
        }
        out.push(flags);
        out.push(self.detect_mult);
        // The section is at most 2 + 255 bytes by construction of Auth Len;
        // saturating keeps a hand-built oversized one from wrapping.
        out.push(u8::try_from(length).unwrap_or(u8::MAX));
        for word in [
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx_us,
            self.required_min_rx_us,
            self.required_min_echo_rx_us,
        ] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        if let Some(auth) = &self.auth {
            out.push(auth.auth_type.code());
            out.push(u8::try_from(auth_len).unwrap_or(u8::MAX));
            out.extend_from_slice(&auth.data);
        }
        out
    }
}

fn decode_auth(section: &[u8]) -> Result<Authentication, DecodeError> {
    // LengthTooSmall guarantees the two framing bytes.
    let auth_type = AuthType::from_code(section[0]);
    let auth_len = usize::from(section[1]);
    if auth_len > section.len() {
        return Err(DecodeError::AuthBeyondLength { auth_len, room: section.len() });
    }
    if !auth_type.valid_len(auth_len) {
        return Err(DecodeError::AuthLength { auth_type, auth_len });
    }
    Ok(Authentication { auth_type, data: section[2..auth_len].to_vec() })
}

#[cfg(test)]
mod tests;
