//! The only module that owns the UDP socket: frames, authenticates and
//! numbers outgoing messages, and turns incoming datagrams into messages or
//! typed rejections.

use std::io;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;

use crate::packet::{self, DecodeError, Envelope, Header, Message};
use crate::replay::{ReplayError, ReplayGuard};

pub struct Network {
    socket: UdpSocket,
    key: Option<[u8; 32]>,
    name: String,
    boot: u64,
    seq: u64,
    guard: ReplayGuard,
    /// One byte larger than any valid datagram, so an oversize one is seen as such.
    buf: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Decode(e) => e.reason(),
            Rejection::Replay(_) => "replay",
        }
    }
}

pub enum Incoming {
    Message { from: SocketAddr, sender: String, msg: Message },
    Rejected { from: SocketAddr, why: Rejection },
}

pub fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Network {
    pub async fn bind(
        addr: SocketAddr,
        name: String,
        boot: u64,
        key: Option<[u8; 32]>,
        replay_window_ms: u64,
    ) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr).await?;
        let guard = ReplayGuard::new(replay_window_ms, key.is_some());
        Ok(Self { socket, key, name, boot, seq: 0, guard, buf: vec![0; packet::MAX_DATAGRAM + 1] })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one message (a large Sync as several datagrams); returns how many
    /// datagrams went out.
    pub async fn send(&mut self, to: SocketAddr, msg: Message) -> Result<u64, SendError> {
        let mut sent = 0;
        for msg in packet::split(&self.name, msg) {
            self.seq += 1;
            let header = Header { sender: self.name.clone(), boot: self.boot, seq: self.seq, timestamp_ms: wall_clock_ms() };
            let bytes = packet::encode(&Envelope { header, msg }, self.key.as_ref())?;
            self.socket.send_to(&bytes, to).await?;
            sent += 1;
        }
        Ok(sent)
    }

    /// The next datagram. I/O errors (for instance an ICMP error reported on
    /// the socket) are returned and do not close it.
    pub async fn recv(&mut self) -> io::Result<Incoming> {
        let (len, from) = self.socket.recv_from(&mut self.buf).await?;
        let env = match packet::decode(&self.buf[..len], self.key.as_ref()) {
            Ok(env) => env,
            Err(e) => return Ok(Incoming::Rejected { from, why: e.into() }),
        };
        if let Err(e) = self.guard.check(&env.header, wall_clock_ms()) {
            return Ok(Incoming::Rejected { from, why: e.into() });
        }
        Ok(Incoming::Message { from, sender: env.header.sender, msg: env.msg })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Encode(#[from] packet::EncodeError),
    #[error(transparent)]
    Io(#[from] io::Error),
}
