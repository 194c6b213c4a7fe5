//! The RFC 5880 §6.8 state machine of one session, asynchronous mode, as a
//! pure function: [`Session::handle`] takes an [`Event`] and returns the
//! [`Action`]s to carry out. Timers are relative delays the caller arms
//! (re-arming replaces); randomness (the §6.8.7 jitter) comes from a seeded
//! generator owned by the session, so a run is a function of seed and inputs.
//!
//! Echo (§6.4, §6.8.9): single hop only (RFC 5883 §3 forbids it multi-hop);
//! we advertise Required Min Echo RX when the profile asks for echo and the
//! caller says we can loop the remote's echo packets back; we send echo
//! packets while Up if the remote advertises a nonzero Required Min Echo
//! RX, and declare the session Down (diag 2) when none came back for the
//! echo interval times our detect multiplier. While echo runs, the control
//! packets only back it up: we ask for them at most once a second (§6.4).
//!
//! Not here: demand mode (never requested; a remote's D bit is ignored and
//! we keep sending, see docs/bfd.md), authentication (packets carrying it
//! are discarded, as §6.8.6 requires when none is configured).

pub mod replay;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::echo::EchoPacket;
use crate::packet::{ControlPacket, Diagnostic, State};
use crate::profile::{Hop, Profile};

/// §6.8.3: while not Up, the transmit interval is at least one second.
pub const SLOW_TX: Duration = Duration::from_secs(1);
/// §6.4: while echo runs, the Required Min RX we ask for control packets
/// ("a sedate reception rate"); the echo detects failures.
pub const ECHO_CONTROL_RX: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A control packet that passed the decoder, with the TTL or hop limit
    /// it arrived with.
    Received { packet: ControlPacket, ttl: u8 },
    TransmitTimer,
    DetectionTimer,
    AdminUp,
    AdminDown,
    /// The local path to the peer is known to be down (link down).
    PathDown,
    /// New timers or roles (a changed BFDProfile): a Poll Sequence, no flap.
    Profile(Profile),
    /// Time to send the next echo packet.
    EchoTimer,
    /// None of our echo packets came back in the echo detection time.
    EchoDetectionTimer,
    /// One of our echo packets came back from the remote's forwarding plane.
    EchoReceived(EchoPacket),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(ControlPacket),
    /// (Re)arm the transmit timer to fire after this long.
    ArmTransmit(Duration),
    StopTransmit,
    /// (Re)arm the detection timer to fire after this long.
    ArmDetection(Duration),
    StopDetection,
    StateChanged { from: State, to: State, diag: Diagnostic },
    Discarded(Discard),
    SendEcho(EchoPacket),
    /// (Re)arm the echo transmit timer.
    ArmEchoTransmit(Duration),
    /// (Re)arm the echo detection timer.
    ArmEchoDetection(Duration),
    /// Echo stopped: cancel both echo timers.
    StopEcho,
}

/// The session's timers, in the order they fire on a tie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    Detection,
    EchoDetection,
    Transmit,
    EchoTransmit,
}

impl Timer {
    pub const ALL: [Timer; 4] = [Timer::Detection, Timer::EchoDetection, Timer::Transmit, Timer::EchoTransmit];

    pub fn event(self) -> Event {
        match self {
            Timer::Detection => Event::DetectionTimer,
            Timer::EchoDetection => Event::EchoDetectionTimer,
            Timer::Transmit => Event::TransmitTimer,
            Timer::EchoTransmit => Event::EchoTimer,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Timer::Detection => "detection",
            Timer::EchoDetection => "echo-detection",
            Timer::Transmit => "transmit",
            Timer::EchoTransmit => "echo-transmit",
        }
    }

    /// Which timer an action arms (`Some(d)`) or stops (`None`).
    pub fn of(action: &Action) -> Vec<(Timer, Option<Duration>)> {
        match action {
            Action::ArmTransmit(d) => vec![(Timer::Transmit, Some(*d))],
            Action::StopTransmit => vec![(Timer::Transmit, None)],
            Action::ArmDetection(d) => vec![(Timer::Detection, Some(*d))],
            Action::StopDetection => vec![(Timer::Detection, None)],
            Action::ArmEchoTransmit(d) => vec![(Timer::EchoTransmit, Some(*d))],
            Action::ArmEchoDetection(d) => vec![(Timer::EchoDetection, Some(*d))],
            Action::StopEcho => vec![(Timer::EchoTransmit, None), (Timer::EchoDetection, None)],
            _ => Vec::new(),
        }
    }
}

/// A decoded packet the session refuses (§6.8.6 checks that need state).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    #[error("TTL {ttl} below {min}")]
    Ttl { ttl: u8, min: u8 },
    #[error("authentication present but none configured")]
    Authentication,
    #[error("Your Discriminator {got} is not ours ({ours})")]
    Discriminator { got: u32, ours: u32 },
    #[error("session is AdminDown")]
    AdminDown,
    #[error("echo packet while echo is not running")]
    EchoInactive,
    #[error("echo packet with discriminator {got}, not ours ({ours})")]
    EchoDiscriminator { got: u32, ours: u32 },
    #[error("echo sequence {got} not after the last one back ({after}) or beyond the last sent ({sent})")]
    EchoSequence { got: u64, after: u64, sent: u64 },
}

/// Per-session state variables of §6.8.1 plus what the timers need.
#[derive(Debug)]
pub struct Session {
    hop: Hop,
    profile: Profile,
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diagnostic,
    /// The Desired Min TX actually used for timing: lags the profile while
    /// an increase waits for its Poll Sequence (§6.8.3).
    tx_in_use: Duration,
    /// The Required Min RX used for the detection time: lags a decrease.
    rx_in_use: Duration,
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_detect_mult: u8,
    polling: bool,
    /// The intervals the current poll announced; the Final acknowledges
    /// these, not a profile that changed since.
    polled: (Duration, Duration),
    /// The profile changed again during a poll: poll once more after Final.
    repoll: bool,
    transmit_armed: bool,
    detection_armed: bool,
    received_any: bool,
    /// Set by the first AdminUp: a session never started sends nothing.
    started: bool,
    rng: fastrand::Rng,
    /// We can loop the remote's echo packets back (the caller knows: IPv4
    /// forwarding enabled, or our IPv6 reflector); Required Min Echo RX is
    /// advertised only then.
    echo_loopable: bool,
    remote_min_echo_rx: Duration,
    /// We are sending echo packets (§6.8.9).
    echo_active: bool,
    echo_interval_in_use: Duration,
    /// Sequence number of the last echo packet sent.
    echo_sent: u64,
    /// Highest sequence number come back; older ones are refused.
    echo_received: u64,
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Session {
    /// A session in AdminDown with no timer running; [`Event::AdminUp`]
    /// starts it. `local_discr` must be nonzero and unique per system.
    pub fn new(local_discr: u32, profile: Profile, hop: Hop, seed: u64) -> Session {
        Session {
            hop,
            tx_in_use: profile.transmit_interval,
            rx_in_use: profile.receive_interval,
            profile,
            state: State::AdminDown,
            remote_state: State::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diagnostic::None,
            // §6.8.1: initialised to 1 so the active side sends at once.
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: Duration::ZERO,
            remote_detect_mult: 0,
            polling: false,
            polled: (Duration::ZERO, Duration::ZERO),
            repoll: false,
            transmit_armed: false,
            detection_armed: false,
            received_any: false,
            started: false,
            rng: fastrand::Rng::with_seed(seed),
            echo_loopable: true,
            remote_min_echo_rx: Duration::ZERO,
            echo_active: false,
            echo_interval_in_use: Duration::ZERO,
            echo_sent: 0,
            echo_received: 0,
        }
    }

    /// Whether we can loop the remote's echo packets (default yes); false
    /// advertises Required Min Echo RX 0, so the remote sends us none.
    pub fn set_echo_loopable(&mut self, loopable: bool) {
        self.echo_loopable = loopable;
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn remote_state(&self) -> State {
        self.remote_state
    }
    pub fn local_diag(&self) -> Diagnostic {
        self.local_diag
    }
    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }
    pub fn remote_discr(&self) -> u32 {
        self.remote_discr
    }
    pub fn profile(&self) -> &Profile {
        &self.profile
    }
    pub fn polling(&self) -> bool {
        self.polling
    }
    pub fn transmit_armed(&self) -> bool {
        self.transmit_armed
    }
    pub fn detection_armed(&self) -> bool {
        self.detection_armed
    }
    pub fn received_any(&self) -> bool {
        self.received_any
    }
    pub fn echo_active(&self) -> bool {
        self.echo_active
    }

    /// The Required Min Echo RX Interval we advertise: zero unless the
    /// profile asks for echo, single hop (RFC 5883 §3), and we can loop.
    pub fn advertised_echo_rx(&self) -> Duration {
        if self.profile.echo_mode && self.hop == Hop::Single && self.echo_loopable {
            self.profile.echo_interval
        } else {
            Duration::ZERO
        }
    }

    /// §6.8.9: echo runs while Up, single hop, asked for by the profile and
    /// accepted by the remote (nonzero Required Min Echo RX).
    fn echo_wanted(&self) -> bool {
        self.state == State::Up
            && self.profile.echo_mode
            && self.hop == Hop::Single
            && !self.remote_min_echo_rx.is_zero()
    }

    /// §6.8.9: never faster than the remote's Required Min Echo RX. Not
    /// jittered: jitter would go below it.
    fn echo_interval(&self) -> Duration {
        self.profile.echo_interval.max(self.remote_min_echo_rx)
    }

    /// How long without any echo packet back before the session is Down:
    /// the echo interval in use times our detect multiplier (a local
    /// matter, §6.8.9; FRR multiplies by the remote's).
    pub fn echo_detection_time(&self) -> Duration {
        self.echo_interval_in_use * u32::from(self.profile.detect_multiplier)
    }

    /// The Required Min RX Interval we want: the profile's, but at least
    /// [`ECHO_CONTROL_RX`] while echo runs (§6.4).
    fn wanted_rx(&self) -> Duration {
        if self.echo_active { self.profile.receive_interval.max(ECHO_CONTROL_RX) } else { self.profile.receive_interval }
    }

    /// What a Poll Sequence negotiates: our two intervals and multiplier.
    fn timers(&self) -> (Duration, Duration, u8) {
        (self.profile.transmit_interval, self.wanted_rx(), self.profile.detect_multiplier)
    }

    /// §6.8.4, asynchronous mode.
    pub fn detection_time(&self) -> Duration {
        self.rx_in_use.max(self.remote_desired_tx) * u32::from(self.remote_detect_mult)
    }

    /// The Desired Min TX Interval we advertise (§6.8.3 slow start).
    fn advertised_tx(&self) -> Duration {
        if self.state == State::Up { self.profile.transmit_interval } else { self.profile.transmit_interval.max(SLOW_TX) }
    }

    /// §6.8.7: the larger of what we want and what the remote accepts.
    pub fn transmit_interval(&self) -> Duration {
        let ours = if self.state == State::Up { self.tx_in_use } else { self.tx_in_use.max(SLOW_TX) };
        ours.max(self.remote_min_rx)
    }

    /// §6.8.7: no packets while the remote asks for none, nor (passive)
    /// before the remote has spoken.
    fn may_transmit(&self) -> bool {
        let silent_remote = self.profile.passive && self.remote_discr == 0;
        !self.remote_min_rx.is_zero() && !silent_remote
    }

    fn jittered(&mut self, interval: Duration) -> Duration {
        // §6.8.7: 0-25 % shorter; at most 90 % of it with a multiplier of 1.
        let top = if self.profile.detect_multiplier == 1 { 900 } else { 1000 };
        interval * self.rng.u32(750..=top) / 1000
    }

    fn packet(&self, poll: bool, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll,
            final_,
            control_plane_independent: false,
            demand: false,
            multipoint: false,
            detect_mult: self.profile.detect_multiplier,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx_us: us(self.advertised_tx()),
            required_min_rx_us: us(self.wanted_rx()),
            required_min_echo_rx_us: us(self.advertised_echo_rx()),
            auth: None,
        }
    }

    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        let before = self.transmit_interval();
        match event {
            Event::Received { packet, ttl } => self.received(packet, ttl, &mut out),
            Event::TransmitTimer => {
                self.transmit_armed = false;
                if self.may_transmit() {
                    out.push(Action::Send(self.packet(self.polling, false)));
                }
            }
            Event::DetectionTimer => self.detection_expired(&mut out),
            Event::AdminDown => {
                if self.state != State::AdminDown {
                    self.set_state(State::AdminDown, Diagnostic::AdministrativelyDown, &mut out);
                    self.stop_detection(&mut out);
                    // §6.8.16: tell the remote, so it goes Down with diag 3
                    // rather than waiting for its detection time.
                    if self.may_transmit() {
                        out.push(Action::Send(self.packet(false, false)));
                    }
                }
            }
            Event::AdminUp => {
                if self.state == State::AdminDown {
                    self.started = true;
                    self.set_state(State::Down, Diagnostic::None, &mut out);
                    if self.may_transmit() {
                        out.push(Action::Send(self.packet(false, false)));
                    }
                }
            }
            Event::PathDown => {
                if matches!(self.state, State::Init | State::Up) {
                    self.set_state(State::Down, Diagnostic::PathDown, &mut out);
                    if self.may_transmit() {
                        out.push(Action::Send(self.packet(false, false)));
                    }
                }
            }
            Event::Profile(profile) => self.new_profile(profile, &mut out),
            Event::EchoTimer => {
                if self.echo_active {
                    self.send_echo(&mut out);
                }
            }
            Event::EchoDetectionTimer => {
                if self.echo_active {
                    self.set_state(State::Down, Diagnostic::EchoFunctionFailed, &mut out);
                    if self.may_transmit() {
                        out.push(Action::Send(self.packet(false, false)));
                    }
                }
            }
            Event::EchoReceived(echo) => self.echo_received(echo, &mut out),
        }
        self.schedule_echo(&mut out);
        self.schedule_transmit(before, &mut out);
        out
    }

    /// Keeps the transmit timer consistent with [`Self::may_transmit`]: armed
    /// when sending is allowed (re-armed when the interval changed), stopped
    /// otherwise.
    fn schedule_transmit(&mut self, before: Duration, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        let interval = self.transmit_interval();
        if self.may_transmit() {
            if !self.transmit_armed || interval != before {
                let d = self.jittered(interval);
                out.push(Action::ArmTransmit(d));
                self.transmit_armed = true;
            }
        } else if self.transmit_armed {
            out.push(Action::StopTransmit);
            self.transmit_armed = false;
        }
    }

    fn set_state(&mut self, to: State, diag: Diagnostic, out: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        out.push(Action::StateChanged { from, to, diag });
        if to != State::Up && self.echo_active {
            // Echo runs only while Up (§6.4); stopped before any packet
            // announcing the new state advertises the echo-time timers.
            let before = self.timers();
            self.echo_active = false;
            out.push(Action::StopEcho);
            self.retime(before, out);
        }
        if to != State::Up && self.polling {
            // A poll only matters for an Up session's timing.
            self.finish_poll();
        }
        if to == State::Up && self.profile.transmit_interval != SLOW_TX {
            // Leaving slow start changes the advertised Desired Min TX.
            self.start_poll();
        }
    }

    fn start_poll(&mut self) {
        self.polling = true;
        self.polled = (self.profile.transmit_interval, self.wanted_rx());
    }

    /// Applies what the remote acknowledged (or, leaving Up, everything:
    /// timing outside Up is not negotiated).
    fn finish_poll(&mut self) {
        self.polling = false;
        self.repoll = false;
        if self.state == State::Up {
            // A faster transmit or slower receive set since is already safe.
            self.tx_in_use = self.polled.0.min(self.profile.transmit_interval);
            self.rx_in_use = self.polled.1.max(self.wanted_rx());
        } else {
            self.tx_in_use = self.profile.transmit_interval;
            self.rx_in_use = self.wanted_rx();
        }
    }

    fn stop_detection(&mut self, out: &mut Vec<Action>) {
        if self.detection_armed {
            self.detection_armed = false;
            out.push(Action::StopDetection);
        }
    }

    fn received(&mut self, p: ControlPacket, ttl: u8, out: &mut Vec<Action>) {
        let min = self.hop.min_ttl(&self.profile);
        if ttl < min {
            out.push(Action::Discarded(Discard::Ttl { ttl, min }));
            return;
        }
        if p.auth.is_some() {
            out.push(Action::Discarded(Discard::Authentication));
            return;
        }
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discr {
            out.push(Action::Discarded(Discard::Discriminator { got: p.your_discriminator, ours: self.local_discr }));
            return;
        }
        self.received_any = true;
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_min_rx = Duration::from_micros(u64::from(p.required_min_rx_us));
        self.remote_desired_tx = Duration::from_micros(u64::from(p.desired_min_tx_us));
        self.remote_detect_mult = p.detect_mult;
        self.remote_min_echo_rx = Duration::from_micros(u64::from(p.required_min_echo_rx_us));
        let mut poll_again = false;
        if p.final_ && self.polling {
            poll_again = self.repoll;
            self.finish_poll();
        }
        if self.state == State::AdminDown {
            out.push(Action::Discarded(Discard::AdminDown));
            return;
        }
        let old = self.state;
        match (old, p.state) {
            (State::Init | State::Up, State::AdminDown) => {
                self.set_state(State::Down, Diagnostic::NeighborSignaledSessionDown, out)
            }
            (State::Down, State::Down) => self.set_state(State::Init, Diagnostic::None, out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.set_state(State::Up, Diagnostic::None, out)
            }
            (State::Up, State::Down) => self.set_state(State::Down, Diagnostic::NeighborSignaledSessionDown, out),
            _ => {}
        }
        let mut poll_now = false;
        if poll_again && self.state == State::Up {
            self.start_poll();
            poll_now = true;
        }
        // The detection timer restarts on every accepted packet (§6.8.4).
        out.push(Action::ArmDetection(self.detection_time()));
        self.detection_armed = true;
        if p.poll {
            // §6.8.7: answer a Poll at once, whatever the transmit timer; a
            // packet never carries both P and F, so our own P waits for the
            // next periodic packet.
            out.push(Action::Send(self.packet(false, true)));
        } else if (self.state != old || poll_now) && self.may_transmit() {
            out.push(Action::Send(self.packet(self.polling, false)));
        }
    }

    fn detection_expired(&mut self, out: &mut Vec<Action>) {
        self.detection_armed = false;
        if matches!(self.state, State::Init | State::Up) {
            self.set_state(State::Down, Diagnostic::ControlDetectionTimeExpired, out);
        }
        // §6.8.1: a silent remote is forgotten; back to the initial values.
        self.remote_discr = 0;
        self.remote_state = State::Down;
        self.remote_min_rx = Duration::from_micros(1);
        self.remote_desired_tx = Duration::ZERO;
        self.remote_min_echo_rx = Duration::ZERO;
        if self.state == State::Down && self.may_transmit() {
            out.push(Action::Send(self.packet(false, false)));
        }
    }

    fn new_profile(&mut self, profile: Profile, out: &mut Vec<Action>) {
        let before = self.timers();
        self.profile = profile;
        self.retime(before, out);
    }

    /// Our timers changed from `before` (a profile, or echo starting or
    /// stopping): outside Up they apply at once; while Up, §6.8.3: a faster
    /// transmit and a slower receive are safe at once, the other two
    /// directions wait for the remote's Final.
    fn retime(&mut self, before: (Duration, Duration, u8), out: &mut Vec<Action>) {
        if self.state != State::Up {
            self.tx_in_use = self.profile.transmit_interval;
            self.rx_in_use = self.wanted_rx();
            return;
        }
        if self.timers() == before {
            return;
        }
        self.tx_in_use = self.tx_in_use.min(self.profile.transmit_interval);
        self.rx_in_use = self.rx_in_use.max(self.wanted_rx());
        if self.polling {
            self.repoll = true;
        } else {
            self.start_poll();
            out.push(Action::Send(self.packet(true, false)));
        }
    }

    /// Starts, re-times or stops echo after any event (§6.8.9).
    fn schedule_echo(&mut self, out: &mut Vec<Action>) {
        if self.echo_wanted() {
            let interval = self.echo_interval();
            if !self.echo_active {
                let before = self.timers();
                self.echo_active = true;
                self.echo_interval_in_use = interval;
                // Only packets of this run count.
                self.echo_received = self.echo_sent;
                self.send_echo(out);
                out.push(Action::ArmEchoDetection(self.echo_detection_time()));
                self.retime(before, out);
            } else if interval != self.echo_interval_in_use {
                self.echo_interval_in_use = interval;
                out.push(Action::ArmEchoTransmit(interval));
            }
        } else if self.echo_active {
            let before = self.timers();
            self.echo_active = false;
            out.push(Action::StopEcho);
            self.retime(before, out);
        }
    }

    fn send_echo(&mut self, out: &mut Vec<Action>) {
        self.echo_sent += 1;
        out.push(Action::SendEcho(EchoPacket { my_discriminator: self.local_discr, sequence: self.echo_sent }));
        out.push(Action::ArmEchoTransmit(self.echo_interval_in_use));
    }

    fn echo_received(&mut self, echo: EchoPacket, out: &mut Vec<Action>) {
        if !self.echo_active {
            out.push(Action::Discarded(Discard::EchoInactive));
        } else if echo.my_discriminator != self.local_discr {
            out.push(Action::Discarded(Discard::EchoDiscriminator { got: echo.my_discriminator, ours: self.local_discr }));
        } else if echo.sequence <= self.echo_received || echo.sequence > self.echo_sent {
            out.push(Action::Discarded(Discard::EchoSequence {
                got: echo.sequence,
                after: self.echo_received,
                sent: self.echo_sent,
            }));
        } else {
            self.echo_received = echo.sequence;
            out.push(Action::ArmEchoDetection(self.echo_detection_time()));
        }
    }
}
