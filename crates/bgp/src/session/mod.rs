//! The RFC 4271 §8 finite state machine as a pure function: typed events in,
//! typed actions out. Sockets and clocks belong to the caller
//! ([`crate::speaker`]); this makes every transition replayable from text
//! (see [`text`] and tests/replay).
//!
//! Simplifications of RFC 4271 §8, on purpose:
//! - one connection at a time: the caller offers an incoming connection
//!   only while the session is not past Active (no collision resolution
//!   between two live connections, §6.8);
//! - after any error the session goes to Active with the connect retry
//!   timer armed (the "automatic start" of §8.1.1), rather than Idle;
//! - the optional DelayOpen and damping features are absent.

pub mod backoff;
pub mod negotiate;
pub mod text;

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::packet::notification::{CEASE, FSM_ERROR, HOLD_TIMER_EXPIRED};
use crate::packet::{Capabilities, DecodeError, Family, Message, Notification, Open};
use backoff::Backoff;
pub use negotiate::{Negotiated, PeerAsn};

/// RFC 4271 §8.2.2: the hold timer while waiting for the peer's OPEN.
pub const OPEN_HOLD: Duration = Duration::from_secs(240);
/// How long one TCP connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The AS we present (BGPPeer localASN when set, else myASN).
    pub local_asn: u32,
    pub peer_asn: PeerAsn,
    pub router_id: Ipv4Addr,
    /// Seconds: 0, or at least 3.
    pub hold_time: u16,
    pub keepalive: Option<u16>,
    /// First connect retry delay; doubled after each failure up to the cap.
    pub connect_retry: Duration,
    pub connect_retry_max: Duration,
    pub families: Vec<Family>,
    /// Restart time announced in the graceful restart capability.
    pub graceful_restart: Option<u16>,
    /// Never dial; wait for the peer to connect.
    pub passive: bool,
}

impl SessionConfig {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            families: self.families.clone(),
            four_octet_as: Some(self.local_asn),
            route_refresh: true,
            graceful_restart: self
                .graceful_restart
                .map(|t| crate::packet::GracefulRestart {
                    restarting: false,
                    restart_time: t,
                    // The F bit is set: what forwards a Service's traffic on
                    // the node (kube-proxy, the CNI) outlives a restart of
                    // the speaker. With it clear, the helper must drop our
                    // stale routes as soon as the new OPEN arrives (RFC 4724
                    // §4.2), before we have re-advertised them.
                    families: self.families.iter().map(|f| (*f, true)).collect(),
                }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start,
    /// Administrative stop, sending Cease with this subcode when a
    /// connection is open (RFC 4486: 2 shutdown, 3 de-configured, 6 config
    /// change).
    Stop {
        cease_subcode: u8,
    },
    TcpConnected,
    TcpFailed,
    TcpClosed,
    Message(Message),
    Malformed(DecodeError),
    TimerFired(Timer),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Open(Open),
    Keepalive,
    Notification(Notification),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    Stopped,
    HoldTimerExpired,
    NotificationReceived(Notification),
    /// We found an error and told the peer.
    NotificationSent(Notification),
    ConnectionClosed,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::Stopped => f.write_str("stopped"),
            DownReason::HoldTimerExpired => f.write_str("hold timer expired"),
            DownReason::NotificationReceived(n) => write!(f, "notification received {n}"),
            DownReason::NotificationSent(n) => write!(f, "notification sent {n}"),
            DownReason::ConnectionClosed => f.write_str("connection closed"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer (abandoning any attempt underway).
    Connect,
    Send(Outgoing),
    /// Close the connection (after sending what was queued).
    Close,
    Arm(Timer, Duration),
    Cancel(Timer),
    Up(Negotiated),
    Down(DownReason),
    /// The peer asked for our routes of a family again (RFC 2918).
    ResendRoutes(Family),
}

pub struct Session {
    config: SessionConfig,
    state: State,
    backoff: Backoff,
    negotiated: Option<Negotiated>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        let backoff = Backoff::new(config.connect_retry, config.connect_retry_max);
        Self {
            config,
            state: State::Idle,
            backoff,
            negotiated: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// What was negotiated, while Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Whether the caller may hand over an incoming connection now.
    pub fn accepts_incoming(&self) -> bool {
        matches!(self.state, State::Connect | State::Active)
    }

    pub fn step(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match (self.state, event) {
            (State::Idle, Event::Start) => self.begin_connect(&mut out),
            (State::Idle, _) => {}
            (_, Event::Start) => {}
            (_, Event::Stop { cease_subcode }) => {
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    out.push(Action::Send(Outgoing::Notification(Notification::new(
                        CEASE,
                        cease_subcode,
                        vec![],
                    ))));
                }
                if self.state != State::Active {
                    out.push(Action::Close);
                }
                self.cancel_all(&mut out);
                if self.state == State::Established {
                    out.push(Action::Down(DownReason::Stopped));
                }
                self.negotiated = None;
                self.state = State::Idle;
            }
            (State::Connect | State::Active, Event::TcpConnected) => {
                out.push(Action::Cancel(Timer::ConnectRetry));
                let open = Open::new(
                    self.config.local_asn,
                    self.config.hold_time,
                    self.config.router_id,
                    self.config.capabilities(),
                );
                out.push(Action::Send(Outgoing::Open(open)));
                out.push(Action::Arm(Timer::Hold, OPEN_HOLD));
                self.state = State::OpenSent;
            }
            (State::Connect, Event::TcpFailed | Event::TcpClosed) => {
                self.retry_later(&mut out);
            }
            (State::Connect, Event::TimerFired(Timer::ConnectRetry)) => {
                // The attempt took too long: abandon it and back off.
                out.push(Action::Close);
                self.retry_later(&mut out);
            }
            (State::Active, Event::TimerFired(Timer::ConnectRetry)) => self.begin_connect(&mut out),
            (State::Connect | State::Active, _) => {}
            (State::OpenSent, Event::Message(Message::Open(open))) => {
                let local = negotiate::Local {
                    asn: self.config.local_asn,
                    router_id: self.config.router_id,
                    hold_time: self.config.hold_time,
                    keepalive: self.config.keepalive,
                    peer_asn: self.config.peer_asn,
                    caps: &self.config.capabilities(),
                };
                match negotiate::negotiate(&local, &open) {
                    Ok(n) => {
                        out.push(Action::Send(Outgoing::Keepalive));
                        self.arm_session_timers(&mut out, &n);
                        self.negotiated = Some(n);
                        self.state = State::OpenConfirm;
                    }
                    Err(notification) => self.fail(&mut out, Some(notification), None),
                }
            }
            (State::OpenConfirm, Event::Message(Message::Keepalive)) => {
                if let Some(n) = &self.negotiated {
                    self.restart_hold(&mut out, n.hold_time);
                    out.push(Action::Up(n.clone()));
                }
                self.backoff.reset();
                self.state = State::Established;
            }
            (State::Established, Event::Message(Message::Keepalive | Message::Update(_))) => {
                let hold = self.negotiated.as_ref().map_or(0, |n| n.hold_time);
                self.restart_hold(&mut out, hold);
            }
            (State::Established, Event::Message(Message::RouteRefresh(family))) => {
                let hold = self.negotiated.as_ref().map_or(0, |n| n.hold_time);
                self.restart_hold(&mut out, hold);
                let negotiated = self
                    .negotiated
                    .as_ref()
                    .map(|n| n.families.clone())
                    .unwrap_or_default();
                // A request for a family we do not speak is ignored (RFC 2918 §4).
                if let Some(f) = family.filter(|f| negotiated.contains(f)) {
                    out.push(Action::ResendRoutes(f));
                }
            }
            (State::OpenConfirm | State::Established, Event::TimerFired(Timer::Keepalive)) => {
                out.push(Action::Send(Outgoing::Keepalive));
                if let Some(n) = self.negotiated.as_ref().filter(|n| n.keepalive > 0) {
                    out.push(Action::Arm(Timer::Keepalive, secs(n.keepalive)));
                }
            }
            (_, Event::TimerFired(Timer::Hold)) => {
                let n = Notification::new(HOLD_TIMER_EXPIRED, 0, vec![]);
                self.fail(&mut out, Some(n), Some(DownReason::HoldTimerExpired));
            }
            (_, Event::Message(Message::Notification(n))) => {
                self.fail(&mut out, None, Some(DownReason::NotificationReceived(n)));
            }
            (_, Event::Malformed(e)) => self.fail(&mut out, Some(e.notification()), None),
            (_, Event::TcpClosed | Event::TcpFailed) => {
                self.fail(&mut out, None, Some(DownReason::ConnectionClosed));
            }
            (state, Event::Message(_)) => {
                // RFC 6608 subcodes: unexpected message in OpenSent (1),
                // OpenConfirm (2), Established (3).
                let sub = match state {
                    State::OpenSent => 1,
                    State::OpenConfirm => 2,
                    _ => 3,
                };
                self.fail(
                    &mut out,
                    Some(Notification::new(FSM_ERROR, sub, vec![])),
                    None,
                );
            }
            (_, Event::TimerFired(_) | Event::TcpConnected) => {}
        }
        out
    }

    fn begin_connect(&mut self, out: &mut Vec<Action>) {
        if self.config.passive {
            self.state = State::Active;
            return;
        }
        out.push(Action::Connect);
        // Bounds the attempt (a SYN dropped by a peer with another MD5 key
        // gets no answer at all).
        out.push(Action::Arm(Timer::ConnectRetry, CONNECT_TIMEOUT));
        self.state = State::Connect;
    }

    fn retry_later(&mut self, out: &mut Vec<Action>) {
        if self.config.passive {
            self.state = State::Active;
            return;
        }
        out.push(Action::Arm(Timer::ConnectRetry, self.backoff.next_delay()));
        self.state = State::Active;
    }

    fn arm_session_timers(&self, out: &mut Vec<Action>, n: &Negotiated) {
        self.restart_hold(out, n.hold_time);
        if n.keepalive > 0 {
            out.push(Action::Arm(Timer::Keepalive, secs(n.keepalive)));
        }
    }

    fn restart_hold(&self, out: &mut Vec<Action>, hold: u16) {
        if hold > 0 {
            out.push(Action::Arm(Timer::Hold, secs(hold)));
        } else {
            out.push(Action::Cancel(Timer::Hold));
        }
    }

    fn cancel_all(&self, out: &mut Vec<Action>) {
        for t in [Timer::ConnectRetry, Timer::Hold, Timer::Keepalive] {
            out.push(Action::Cancel(t));
        }
    }

    /// Ends the connection: optionally tells the peer why, reports the
    /// session down if it was up, and waits for the connect retry timer.
    fn fail(
        &mut self,
        out: &mut Vec<Action>,
        send: Option<Notification>,
        reason: Option<DownReason>,
    ) {
        let was_up = self.state == State::Established;
        if let Some(n) = &send {
            out.push(Action::Send(Outgoing::Notification(n.clone())));
        }
        out.push(Action::Close);
        out.push(Action::Cancel(Timer::Hold));
        out.push(Action::Cancel(Timer::Keepalive));
        if was_up {
            let reason = match (reason, send) {
                (Some(r), _) => r,
                (None, Some(n)) => DownReason::NotificationSent(n),
                (None, None) => DownReason::ConnectionClosed,
            };
            out.push(Action::Down(reason));
        }
        self.negotiated = None;
        self.retry_later(out);
    }
}

fn secs(s: u16) -> Duration {
    Duration::from_secs(u64::from(s))
}
